// keel.log: what training writes for people and tools to read — one layer
// below the guard and the fit loop (both write to it).
//   metrics.ts   the metrics log (JSON lines)
//   health.ts    per-layer numerical health every N steps
//   tfevents.ts  TensorBoard event files (TFRecord + Event/Summary protobufs)
export { MetricsLog, readMetrics, type MetricsRecord } from './metrics.js';
export { HealthMonitor, type HealthRecord, type LayerHealth, type HealthOptions } from './health.js';
export { TfEventsWriter, eventsFromMetricsLine, metricNumber, guardEventMarkdown, maskedCrc32c, tfRecord, type TfEvent, type HistogramCounts, type HistogramInput, type TfEventsWriterOptions } from './tfevents.js';
