// The sensor-stream room: long-format and FIT readers, resampling, filtering, windows and window
// features. Below `models` (window features are shared by training and serving), above `data`.
export {};
