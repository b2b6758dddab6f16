/**
 * The SQL-on-FHIR view engine alone: microseconds per Observation per view run, with the fast path
 * (simple expressions compiled to closures) and with fhirpath.js for every expression.
 *
 *   npx tsx bench/view.ts [--seconds 2] [--json]
 *
 * Input: every Observation of the 13 Synthea Bundles vendored in test/fixtures/fhir/synthea (JSON
 * already parsed: parsing is the importer's cost, measured by bench/fhir.ts). Views: the one issue 9
 * sizes the fast path by (patient key, date, quantity value and unit, one row per coding), and a
 * wider one shaped like the feature spec's Observation view (components, coded values). Each is run
 * over all Observations repeatedly for about --seconds after a warm-up; the figure is the median
 * of five such rounds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { compileView, type Resource } from '../src/fhir/index.js';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, json: { type: 'boolean', default: false } } });
const seconds = Number(args.seconds);

const dir = fileURLToPath(new URL('../test/fixtures/fhir/synthea', import.meta.url));
const observations: Resource[] = [];
for (const f of readdirSync(dir).filter((n) => n.endsWith('.json.gz')).sort()) {
  const bundle = JSON.parse(gunzipSync(readFileSync(join(dir, f))).toString('utf8')) as { entry: Array<{ resource: Resource }> };
  for (const e of bundle.entry) if (e.resource.resourceType === 'Observation') observations.push(e.resource);
}

const col = (name: string, path: string) => ({ name, path });
const views = {
  'issue 9 view (4 columns + forEach code.coding)': {
    resource: 'Observation',
    select: [
      { column: [col('patient', 'subject.getReferenceKey(Patient)'), col('date', 'effective.ofType(dateTime)'), col('value', 'value.ofType(Quantity).value'), col('unit', 'value.ofType(Quantity).code')] },
      { forEach: 'code.coding', column: [col('system', 'system'), col('code', 'code')] },
    ],
  },
  'feature-spec-like view (11 columns, 3 forEach(OrNull))': {
    resource: 'Observation',
    select: [
      {
        column: [
          col('patient', 'subject.getReferenceKey(Patient)'), col('id', 'id'), col('status', 'status'), col('effective_date_time', 'effective.ofType(dateTime)'),
          col('effective_instant', 'effective.ofType(instant)'), col('effective_period_start', 'effective.ofType(Period).start'), col('issued', 'issued'),
          col('quantity_value', 'value.ofType(Quantity).value'), col('quantity_unit', 'value.ofType(Quantity).unit'), col('quantity_system', 'value.ofType(Quantity).system'),
          col('quantity_code', 'value.ofType(Quantity).code'),
        ],
      },
      { forEach: 'code.coding', column: [col('code_system', 'system'), col('code', 'code')] },
      { forEachOrNull: 'value.ofType(CodeableConcept).coding', column: [col('value_system', 'system'), col('value_code', 'code')] },
      {
        forEachOrNull: 'component',
        column: [col('component_value', 'value.ofType(Quantity).value'), col('component_code_unit', 'value.ofType(Quantity).code')],
        select: [{ forEachOrNull: 'code.coding', column: [col('component_system', 'system'), col('component_code', 'code')] }],
      },
    ],
  },
};

/** Median µs per resource over five rounds of about `seconds / 5` each. */
function measure(run: (r: Resource) => unknown[]): { us: number; rows: number } {
  let rows = 0;
  for (const o of observations) rows += run(o).length; // warm-up, and the row count
  const rounds: number[] = [];
  for (let k = 0; k < 5; k++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < (seconds * 1e9) / 5) {
      for (const o of observations) run(o);
      n += observations.length;
      elapsed = Number(process.hrtime.bigint() - t0);
    }
    rounds.push(elapsed / 1e3 / n);
  }
  rounds.sort((a, b) => a - b);
  return { us: rounds[2]!, rows };
}

const results: Array<{ view: string; engine: string; usPerResource: number; rowsPerResource: number }> = [];
for (const [name, view] of Object.entries(views)) {
  for (const fastPath of [true, false]) {
    const v = compileView(view, name, { fastPath });
    const m = measure((r) => v.run(r));
    results.push({ view: name, engine: fastPath ? 'fast path' : 'fhirpath.js only', usPerResource: m.us, rowsPerResource: m.rows / observations.length });
  }
}
if (args.json) process.stdout.write(`${JSON.stringify({ observations: observations.length, results })}\n`);
else {
  process.stdout.write(`${observations.length} Synthea Observations, Node ${process.version}\n`);
  for (const r of results) process.stdout.write(`${r.view.padEnd(56)} ${r.engine.padEnd(17)} ${r.usPerResource.toFixed(2).padStart(8)} µs/resource  (${r.rowsPerResource.toFixed(2)} rows each)\n`);
}
