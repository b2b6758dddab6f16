export { logistic, linear, type LinearWeights } from './linear.js';
