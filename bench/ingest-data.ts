/**
 * The files bench/ingest.ts reads, generated deterministically so that every run (and pandas)
 * sees the same bytes:
 *
 * - `numeric`: 100,000 rows × 31 columns (30 measurements with 4 to 7 significant digits, a few
 *   missing, and a 0/1 outcome), about 27 MB: the file the pandas figures were taken on.
 * - `clinical`: a mixed clinical table (ids, ISO dates, integers, floats with gaps, categories,
 *   yes/no and true/false flags, free-text diagnoses) of any size, 1 GB for the throughput figure.
 */
import { createWriteStream, existsSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { Rng } from '../src/core/index.js';

/** Writes `lines()` batches to `path` until `bytes` are written (or the generator ends). */
async function write(path: string, header: string, batch: (rng: Rng) => string[], stop: (rows: number, bytes: number) => boolean): Promise<void> {
  const rng = new Rng(42);
  const out = createWriteStream(path, { highWaterMark: 4 << 20 });
  out.write(header + '\n');
  let rows = 0;
  let bytes = 0;
  while (!stop(rows, bytes)) {
    const lines = batch(rng);
    const chunk = lines.join('\n') + '\n';
    rows += lines.length;
    bytes += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** The 27 MB numeric table (100,000 × 31), or `rows` rows of the same columns. */
export async function numericTable(path: string, rows = 100_000): Promise<void> {
  if (existsSync(path)) return;
  const cols = Array.from({ length: 30 }, (_, j) => `x${j + 1}`);
  const scale = cols.map((_, j) => 10 ** ((j % 5) - 1));
  await write(
    path,
    [...cols, 'outcome'].join(','),
    (rng) => {
      const lines: string[] = [];
      for (let k = 0; k < 1000; k++) {
        const cells: string[] = [];
        let z = 0;
        for (let j = 0; j < 30; j++) {
          const v = rng.normal();
          if (j < 5) z += v;
          cells.push(rng.next() < 0.01 ? '' : (v * scale[j]! + 50 * scale[j]!).toFixed(j % 4 === 0 ? 2 : 5));
        }
        cells.push(z + rng.normal() > 0 ? '1' : '0');
        lines.push(cells.join(','));
      }
      return lines;
    },
    (written) => written >= rows,
  );
}

const DIAGNOSES = ['none', 'type 2 diabetes', 'hypertension', 'asthma', 'copd', 'heart failure', 'ckd stage 3'];
const SITES = ['north', 'south', 'east', 'west', 'central'];

/** A mixed clinical table of at least `sizeMb` megabytes. */
export async function clinicalTable(path: string, sizeMb: number): Promise<void> {
  const target = sizeMb * 1024 * 1024;
  if (existsSync(path) && statSync(path).size >= target) return;
  let id = 100000;
  const day0 = Date.UTC(2015, 0, 1);
  await write(
    path,
    'patient_id,visit_date,age,sex,site,bmi,systolic_bp,diastolic_bp,glucose,hba1c,cholesterol,smoker,steps_per_day,diagnosis,readmitted',
    (rng) => {
      const lines: string[] = [];
      for (let k = 0; k < 20000; k++) {
        const age = 18 + rng.int(72);
        const bmi = rng.next() < 0.03 ? '' : (22 + rng.normal() * 4.5).toFixed(1);
        const sys = Math.round(125 + rng.normal() * 16);
        const dia = Math.round(80 + rng.normal() * 10);
        const glu = rng.next() < 0.05 ? 'NA' : (100 + rng.normal() * 25).toFixed(1);
        const hba1c = (5.6 + rng.normal() * 0.9).toFixed(2);
        const chol = Math.round(190 + rng.normal() * 35);
        const date = new Date(day0 + rng.int(3650) * 86400000).toISOString().slice(0, 10);
        const steps = rng.next() < 0.1 ? '' : String(Math.round(6000 + rng.normal() * 2500));
        lines.push(
          `${id++},${date},${age},${rng.next() < 0.5 ? 'F' : 'M'},${SITES[rng.int(5)]},${bmi},${sys},${dia},${glu},${hba1c},${chol},${rng.next() < 0.2 ? 'yes' : 'no'},${steps},${DIAGNOSES[rng.int(7)]},${rng.next() < 0.15 ? 'true' : 'false'}`,
        );
      }
      return lines;
    },
    (_rows, bytes) => bytes >= target,
  );
}
