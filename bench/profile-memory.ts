/**
 * Memory and speed of the streaming profile on a large synthetic clinical CSV.
 *
 *   npx tsx bench/profile-memory.ts [--size-mb 1024] [--keep]
 *
 * Writes `medfit-profile-<size>mb.csv` into the OS temp folder (reused when already there and
 * the same size), profiles it with `profileFile`, and prints elapsed seconds, MB/s and peak RSS
 * (sampled `process.memoryUsage().rss` and the kernel's `maxRSS`). The target: under 500 MB of
 * memory for a 1 GB file. `--keep` leaves the file in place; otherwise it is deleted at the end.
 */
import { createWriteStream, existsSync, statSync, unlinkSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/core/index.js';
import { profileFile } from '../src/data/profile.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const sizeMb = Number(arg('size-mb', '1024'));
const keep = process.argv.includes('--keep');
const target = sizeMb * 1024 * 1024;
const path = join(tmpdir(), `medfit-profile-${sizeMb}mb.csv`);

const DIAGNOSES = ['none', 'type 2 diabetes', 'hypertension', 'asthma', 'copd', 'heart failure', 'ckd stage 3'];
const SITES = ['north', 'south', 'east', 'west', 'central'];

/** Writes a realistic-looking clinical table: ids, dates, measurements with gaps, labels. */
async function generate(): Promise<void> {
  const rng = new Rng(42);
  const out = createWriteStream(path, { highWaterMark: 4 << 20 });
  out.write('patient_id,visit_date,age,sex,site,bmi,systolic_bp,diastolic_bp,glucose,hba1c,cholesterol,smoker,steps_per_day,diagnosis,readmitted\n');
  let written = 0;
  let id = 100000;
  const day0 = Date.UTC(2015, 0, 1);
  while (written < target) {
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
    const chunk = lines.join('\n') + '\n';
    written += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

if (!existsSync(path) || statSync(path).size < target) {
  const t0 = performance.now();
  await generate();
  console.log(`generated ${path} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const bytes = statSync(path).size;
if (global.gc) global.gc();
const rssBefore = process.memoryUsage().rss;
let peak = rssBefore;
const timer = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 50);
const t0 = performance.now();
const profile = await profileFile(path, { target: 'readmitted' });
const seconds = (performance.now() - t0) / 1000;
clearInterval(timer);
peak = Math.max(peak, process.memoryUsage().rss);
const mb = bytes / (1024 * 1024);
console.log(
  JSON.stringify(
    {
      file: path,
      sizeMb: Number(mb.toFixed(1)),
      rows: profile.rows,
      columns: profile.columns.map((c) => `${c.name}:${c.type}${c.role === 'ignored' ? ' (ignored)' : ''}`),
      duplicateRows: profile.duplicateRows,
      seconds: Number(seconds.toFixed(1)),
      mbPerSecond: Number((mb / seconds).toFixed(1)),
      rssBeforeMb: Math.round(rssBefore / 2 ** 20),
      peakRssSampledMb: Math.round(peak / 2 ** 20),
      // Linux reports maxRSS in KiB; it covers the generation step too when it ran in this process.
      maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      approximate: profile.approximate,
    },
    null,
    2,
  ),
);
if (!keep) unlinkSync(path);
