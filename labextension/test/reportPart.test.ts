// The runs list's reading of a summary's JSON part (src/reportPart.ts); the part itself is
// jupyter_perf/ui/summary.py's report_part (tests/test_summary_render.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IReportPart, readReportPart, runFields } from '../src/reportPart';

const part: IReportPart = {
  started_at: '2024-05-01T10:00:00',
  wall_time: 12.3,
  steps: 1200,
  throughput: { steps_per_s: 10, samples_per_s: 320 },
  bottleneck: 'input_pipeline',
  recommendation: {
    optimization: 'dataloader.workers',
    expected_speedup: 1.8,
    reason: 'load batches in parallel'
  },
  error: null,
  interrupted: false
};

test('a run reads its time, bottleneck and throughput, samples first', () => {
  assert.deepEqual(runFields(part), {
    time: '12.3 s',
    bottleneck: 'input_pipeline',
    throughput: '320 samples/s',
    state: '',
    title:
      'Go to the cell\nstarted 2024-05-01T10:00:00, 1,200 steps\nrecommended: dataloader.workers (×1.80)'
  });
  const stepsOnly = {
    ...part,
    throughput: { steps_per_s: 1234, samples_per_s: null }
  };
  assert.equal(runFields(stepsOnly).throughput, '1.23k steps/s');
  const none = {
    ...part,
    throughput: { steps_per_s: null, samples_per_s: null }
  };
  assert.equal(runFields(none).throughput, '', 'nothing measured: left out');
});

test('an error or an interruption is said in the tooltip', () => {
  const failed: IReportPart = {
    ...part,
    wall_time: null,
    recommendation: null,
    error: { type: 'RuntimeError', message: 'CUDA out of memory.', oom: true },
    interrupted: true
  };
  const fields = runFields(failed);
  assert.equal(fields.time, '', 'no wall time: left out, not a question mark');
  assert.equal(fields.state, 'out of memory');
  assert.equal(
    runFields({
      ...failed,
      error: { type: 'ValueError', message: 'x', oom: false }
    }).state,
    'failed: ValueError'
  );
  assert.equal(runFields({ ...part, interrupted: true }).state, 'interrupted');
  assert.equal(
    fields.title,
    'Go to the cell\nstarted 2024-05-01T10:00:00, 1,200 steps\n' +
      'error: RuntimeError: CUDA out of memory. [out of memory]\n' +
      'interrupted: Ctrl-C stopped the run'
  );
});

test('only a well-formed part is read', () => {
  assert.equal(readReportPart(part), part);
  for (const value of [
    undefined,
    null,
    'text',
    [],
    { bottleneck: 'compute' }
  ]) {
    assert.equal(readReportPart(value), null, JSON.stringify(value));
  }
});
