import { describe, it, expect } from 'vitest';
import { MedfitError } from '../core/index.js';
import { canConvert, convertUnit, isQuotableUnit, quantityUnit, ucumProblem, unitConverter, UCUM_SYSTEM } from './ucum.js';

const close = (a: number, b: number, digits = 9) => expect(a).toBeCloseTo(b, digits);

describe('UCUM parsing', () => {
  it('understands the units clinical data uses', () => {
    for (const u of [
      'mg/dL', 'mmol/L', 'g/dL', 'kg/m2', 'mm[Hg]', '/min', '{beats}/min', '%', '[in_i]', '[lb_av]', 'Cel', '[degF]',
      'mL/min/{1.73_m2}', '10*3/uL', '10*6/uL', '10*9/L', 'fL', 'pg', 'U/L', 'kU/L', 'm[iU]/mL', '{score}', '{T-score}',
      'kg.m-2', 'g/(kg.d)', 's-1', 'umol/L', 'ng/mL', 'cm[H2O]', 'meq/L', 'mosm/kg', '1', 'kcal', '[Cal]', 'mg{creat}/g',
      'cm', 'km/h', 'a', 'mo', 'wk', 'kPa', 'L/min', '%{HemoglobinSaturation}', 'mg/dL{glucose}', '(mg/dL)',
    ]) expect(ucumProblem(u), u).toBeUndefined();
  });

  it('says what is wrong with a unit it refuses', () => {
    expect(ucumProblem('')).toBe('is empty');
    expect(ucumProblem('mEq/L')).toMatch(/"mEq" that is not a UCUM unit/);
    expect(ucumProblem('mg/')).toMatch(/expects a unit at character 4/);
    expect(ucumProblem('(mg/dL')).toMatch(/unclosed parenthesis/);
    expect(ucumProblem('m[Hg')).toMatch(/unclosed bracket/);
    expect(ucumProblem('mg{x')).toMatch(/unclosed annotation/);
    expect(ucumProblem('kg^2')).toMatch(/not a UCUM unit/);
    expect(ucumProblem('mg dL')).toMatch(/character UCUM does not allow/);
    expect(ucumProblem('Cel/h')).toMatch(/offset unit/);
    expect(ucumProblem('mCel')).toMatch(/offset unit Cel with a prefix/);
    expect(ucumProblem('[degF]2')).toMatch(/offset unit/);
    expect(ucumProblem('kmin')).toMatch(/not a UCUM unit/); // min is not metric: no prefixes
    expect(ucumProblem('x'.repeat(200))).toMatch(/longer than/);
    expect(ucumProblem('('.repeat(40) + 'g' + ')'.repeat(40))).toMatch(/too deeply/);
    expect(ucumProblem('mg)')).toMatch(/unexpected "\)"/);
  });

  it('reads a unit up to the length cap, and no further', () => {
    const long = `${'m.'.repeat(59)}m`; // 119 characters: m^60
    expect(ucumProblem(long)).toBeUndefined();
    expect(convertUnit(1, long, `m${60}`)).toBe(1);
    expect(ucumProblem(`${long}.m`)).toMatch(/longer than 120/);
  });
});

describe('UCUM conversion', () => {
  it('converts between commensurable units', () => {
    close(convertUnit(1, 'g/dL', 'mg/dL'), 1000);
    close(convertUnit(5, 'mmol/L', 'umol/L'), 5000);
    close(convertUnit(1, '[lb_av]', 'kg'), 0.45359237);
    close(convertUnit(10, '[in_i]', 'cm'), 25.4);
    close(convertUnit(1, '[ft_i]', '[in_i]'), 12);
    close(convertUnit(120, 'mm[Hg]', 'kPa'), 15.99864);
    close(convertUnit(72, '{beats}/min', '/min'), 72);
    close(convertUnit(1, '/min', 'Hz'), 1 / 60);
    close(convertUnit(50, '%', '1'), 0.5);
    close(convertUnit(7.2, '10*3/uL', '10*9/L'), 7.2);
    close(convertUnit(90, 'mL/min/{1.73_m2}', 'mL/min'), 90);
    close(convertUnit(1, 'L/min', 'mL/s'), 1000 / 60);
    close(convertUnit(2, 'h', 'min'), 120);
    close(convertUnit(1, 'a', 'd'), 365.25);
    close(convertUnit(1, 'kcal', 'kJ'), 4.184);
    close(convertUnit(1, '[gal_us]', 'L'), 3.785411784);
    close(convertUnit(1, 'g/(kg.d)', 'mg/(kg.d)'), 1000);
    close(convertUnit(10, 'm[iU]/mL', '[iU]/L'), 10);
    close(convertUnit(1, 'meq/L', 'mmol/L'), 1);
  });

  it('converts BMI from pounds per square inch to kg/m2', () => {
    close(convertUnit(1, '[lb_av]/[in_i]2', 'kg/m2'), 0.45359237 / 0.0254 ** 2);
  });

  it('converts the offset temperatures', () => {
    close(convertUnit(98.6, '[degF]', 'Cel'), 37);
    close(convertUnit(37, 'Cel', '[degF]'), 98.6);
    close(convertUnit(0, 'Cel', 'K'), 273.15);
    close(convertUnit(310.15, 'K', 'Cel'), 37);
    close(convertUnit(32, '[degF]', 'K'), 273.15);
    close(convertUnit(9, '[degR]', 'K'), 5);
    expect(canConvert('Cel', 'kg')).toBe(false);
  });

  it('converts mass to substance concentration by the molar mass of the analyte', () => {
    close(convertUnit(100, 'mg/dL', 'mmol/L', { code: 'http://loinc.org|2345-7' }), 1000 / 180.156);
    close(convertUnit(100, 'mg/dL', 'mmol/L', { code: '2339-0' }), 1000 / 180.156);
    close(convertUnit(5.5, 'mmol/L', 'mg/dL', { code: 'http://loinc.org|1558-6' }), (5.5 * 180.156) / 10);
    close(convertUnit(200, 'mg/dL', 'mmol/L', { code: 'http://loinc.org|2093-3' }), 5.17258, 5);
    close(convertUnit(150, 'mg/dL', 'mmol/L', { code: 'http://loinc.org|2571-8' }), 1.693576, 5); // the tables' factor: 0.01129
    close(convertUnit(1, 'mg/dL', 'umol/L', { code: 'http://loinc.org|2160-0' }), 88.4017, 4);
    close(convertUnit(14, 'mg/dL', 'mmol/L', { code: 'http://loinc.org|3094-0' }), 4.99750, 5);
    close(convertUnit(1, 'g/L', 'mol/m3', { code: '2345-7' }), 1000 / 180.156);
  });

  it('refuses mass ↔ substance without a known molar mass, or between unlike quantities', () => {
    expect(canConvert('mg/dL', 'mmol/L')).toBe(false);
    expect(canConvert('mg/dL', 'mmol/L', 'http://loinc.org|718-7')).toBe(false);
    expect(canConvert('mg/dL', 'mmol/L', 'http://snomed.info/sct|2345-7')).toBe(false); // not a LOINC code
    expect(canConvert('mg', 'mmol/L', '2345-7')).toBe(false);
    expect(canConvert('mg/dL', 'mmol', '2345-7')).toBe(false);
    expect(canConvert('10*3/uL', 'mmol/L', '2345-7')).toBe(false); // counts never become moles
    expect(canConvert('kg', 'm')).toBe(false);
    expect(canConvert('[iU]/L', 'mg/L')).toBe(false);
    expect(canConvert('[iU]/L', "[arb'U]/L")).toBe(false);
    expect(canConvert('mEq/L', 'mmol/L')).toBe(false);
  });

  it('converts HbA1c between NGSP % and IFCC mmol/mol by the master equation', () => {
    close(convertUnit(5.7, '%', 'mmol/mol', { code: 'http://loinc.org|4548-4' }), (5.7 - 2.152) / 0.09148);
    close(convertUnit(48, 'mmol/mol', '%', { code: 'http://loinc.org|59261-8' }), 0.09148 * 48 + 2.152);
    close(convertUnit(48, 'mmol/mol', '%', { code: '4548-4' }), 6.54304);
    // Same kind: plain arithmetic, even for HbA1c.
    close(convertUnit(6.5, '%', '1', { code: '4548-4' }), 0.065);
    close(convertUnit(48, 'mmol/mol', 'umol/mol', { code: '4548-4' }), 48000);
    // Any other code: % and mmol/mol are both fractions.
    close(convertUnit(10, '%', 'mmol/mol'), 100);
  });

  it('names source, place, code and units when it refuses, never the value', () => {
    let err: unknown;
    try {
      convertUnit(123.456, 'mg/dL', 'mmol/L', { code: 'http://loinc.org|718-7', source: 'obs.ndjson', where: 'line 7' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MedfitError);
    const m = (err as MedfitError).message;
    expect((err as MedfitError).code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(m).toBe('obs.ndjson, line 7: a value of http://loinc.org|718-7 has the unit "mg/dL", which cannot be converted to "mmol/L"');
    expect(m).not.toContain('123');
    expect(() => convertUnit(1, 'mEq/L', 'mmol/L', { source: 's' })).toThrow(/s: a value has the unit "mEq\/L", which has a unit "mEq" that is not a UCUM unit/);
    expect(() => convertUnit(1, '', 'mmol/L', {})).toThrow(/^a value has no unit, and the feature's unit is "mmol\/L"/);
  });

  it('quotes a unit only when it is short and plain: a unit from the data may be anything', () => {
    const message = (from: string, to: string) => {
      try {
        convertUnit(1, from, to, { source: 's', where: 'line 2' });
      } catch (e) {
        expect(e).toBeInstanceOf(MedfitError);
        return (e as MedfitError).message;
      }
      throw new Error('expected a failure');
    };
    const huge = `Zelda${'x'.repeat(1024 * 1024)}`;
    expect(message(huge, 'mg/dL')).toBe(`s, line 2: a value has a unit that is not UCUM (it is longer than 120 characters)`);
    expect(message('mg/dL', huge)).toBe(`s, line 2: a value cannot be converted to a unit that is not UCUM (it is longer than 120 characters)`);
    expect(message('', huge)).toBe(`s, line 2: a value has no unit, and the feature's unit is a unit that is not UCUM`);
    // Short, but characters no unit is written with (a name, markup): described, not quoted.
    for (const odd of ['Zelda <b>', 'Zelda"', 'Zelda\u0000', 'Zelda;x', 'Zeldaé']) {
      const m = message(odd, 'mg/dL');
      expect(m, odd).toMatch(/^s, line 2: a value has a unit that is not UCUM \(it /);
      expect(m, odd).not.toContain('Zelda');
    }
    expect(ucumProblem('Zelda<Secret>')).toBe('has a part that is not a UCUM unit understood here');
    expect(ucumProblem(`mg/Zelda${'y'.repeat(40)}`)).toBe('has a part that is not a UCUM unit understood here');
    // Over 32 characters of plain ones: not quoted either; a real UCUM unit is said to be one.
    const longUcum = `mg{${'a'.repeat(40)}}/dL`;
    expect(ucumProblem(longUcum)).toBeUndefined();
    expect(message(longUcum, 'kg')).toBe('s, line 2: a value has a UCUM unit not quoted here, which cannot be converted to "kg"');
    expect(message(`${'z'.repeat(40)}`, 'kg')).toBe('s, line 2: a value has a unit that is not UCUM (it has a part that is not a UCUM unit understood here)');
    // What units are written with is quoted as before.
    expect(message("[arb'U]/L", 'mg/dL')).toBe(`s, line 2: a value has the unit "[arb'U]/L", which cannot be converted to "mg/dL"`);
    expect(isQuotableUnit('mL/min/{1.73_m2}')).toBe(true);
    expect(isQuotableUnit('x'.repeat(33))).toBe(false);
    expect(unitConverter(huge, 'mg/dL')).toBeUndefined();
  });

  it('rounds converted values to 12 significant digits (no float noise), and leaves unconverted ones alone', () => {
    expect(convertUnit(37, 'Cel', '[degF]')).toBe(98.6);
    expect(convertUnit(5.5, 'mmol/L', 'mg/dL', { code: 'http://loinc.org|2345-7' })).toBe(99.0858);
    expect(convertUnit(11.33, 'kPa', 'mm[Hg]')).toBe(84.982223489);
    expect(convertUnit(1e-20, 'g', 'mg')).toBe(1e-17);
    expect(convertUnit(0, 'g', 'mg')).toBe(0);
    expect(convertUnit(0.1 + 0.2, 'mg/dL', 'mg/dL')).toBe(0.30000000000000004);
    expect(convertUnit(0.1 + 0.2, 'mg/dL', 'g/dL')).toBe(0.0003);
  });

  it('caches converters', () => {
    expect(unitConverter('mg/dL', 'g/L')).toBe(unitConverter('mg/dL', 'g/L'));
    expect(unitConverter('mg/dL', 'mg/dL')!(3)).toBe(3);
  });
});

describe('quantityUnit', () => {
  it('prefers the UCUM code over the display unit', () => {
    expect(quantityUnit('mmHg', UCUM_SYSTEM, 'mm[Hg]')).toBe('mm[Hg]');
    expect(quantityUnit('mmHg', undefined, undefined)).toBe('mm[Hg]');
    expect(quantityUnit('lbs', 'http://example.org/units', 'LB')).toBe('[lb_av]');
    expect(quantityUnit(undefined, 'http://example.org/units', 'mg/dL')).toBe('mg/dL');
    expect(quantityUnit(undefined, undefined, undefined)).toBe('');
  });
});
