/**
 * uPlot charts: a few KB of canvas plotting, fast with thousands of points, bundled (no CDN).
 * Every chart has a text alternative (`label`, read by screen readers), follows its container's
 * width (so a 390 px screen gets a 390 px chart), and shows values on hover through uPlot's legend.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export type ChartOptions = Omit<uPlot.Options, 'width' | 'height'>;

/** Series colours with ≥ 3:1 contrast on white, distinguishable in the common colour blindnesses. */
export const COLORS = ['#0b6bcb', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0f766e', '#a16207', '#475569'];

export function Chart(props: { options: ChartOptions; data: uPlot.AlignedData; height?: number; label: string; class?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const height = props.height ?? 260;

  useEffect(() => {
    const el = box.current!;
    const width = Math.max(200, el.clientWidth);
    plot.current = new uPlot({ ...props.options, width, height } as uPlot.Options, props.data, el);
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (plot.current && Math.abs(plot.current.width - w) > 2) plot.current.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Options define the chart's structure: a new set of options builds a new chart.
  }, [props.options, height]);

  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);

  return <div class={`chart ${props.class ?? ''}`} ref={box} role="img" aria-label={props.label} />;
}
