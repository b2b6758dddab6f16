/** The shapes of the API answers the predict page reads (see src/api/models.ts). */

export type Task = 'binary' | 'multiclass' | 'regression';
export type ColumnType = 'numeric' | 'integer' | 'boolean' | 'categorical' | 'datetime' | 'identifier' | 'text';

export interface SchemaColumn {
  name: string;
  type: ColumnType;
  role: 'feature' | 'target' | 'ignored';
  reason?: string;
}

/** One input column as the fitted pipeline treats it: its fill value for an absent field, its categories. */
export interface PipelineStep {
  kind: 'numeric' | 'boolean' | 'categorical' | 'datetime';
  column: string;
  fill?: number | string;
  categories?: string[];
}

/** `GET /v1/models/{name}/versions/{v}`: a trained table or sequence model, or an uploaded ONNX model. */
export interface VersionDetail {
  name: string;
  version: number;
  stage: string;
  source: 'trained' | 'uploaded';
  family: string;
  task: Task;
  created: string;
  target?: { column: string | string[]; task: Task; classes?: string[] };
  schema?: { columns: SchemaColumn[] };
  features?: string[];
  /** Trained table models: each input column's fill value (training median or most frequent) and categories. */
  inputColumns?: PipelineStep[];
  sequence?: {
    columns: { subject: string; session?: string; time: string };
    timeUnit?: string;
    channels: string[];
    rate: number;
    window: number;
    stride: number;
  };
  lineage?: { dataset: string | null; job: string | null };
  /** Uploaded ONNX models. */
  inputs?: { name: string; datatype: string; shape: number[] }[];
  classes?: string[] | null;
}

export interface RecordExplanation {
  base: number | Record<string, number>;
  contributions: Record<string, number> | Record<string, Record<string, number>>;
  space: 'log-odds' | 'logit' | 'value';
  method: string;
}

export type Prediction = ({ label: string; probabilities: Record<string, number> } | { value: number } | { values: Record<string, number> }) & {
  explanation?: RecordExplanation;
};

export interface PredictAnswer {
  model: { name: string; version: number };
  predictions: Prediction[];
  warnings?: string[];
}

/** One input of the generated form. */
export interface InputSpec {
  name: string;
  kind: 'number' | 'integer' | 'boolean' | 'category' | 'datetime' | 'text';
  /** Categories a drop-down offers (in the pipeline's order: the most frequent first). */
  choices?: string[];
  /** What a blank becomes (the training median or most frequent value), when known. */
  typical?: string;
}
