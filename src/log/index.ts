// keel.log: what training writes for people and tools to read.
//   tfevents.ts  TensorBoard event files (TFRecord + Event/Summary protobufs)
export { TfEventsWriter, eventsFromMetricsLine, metricNumber, guardEventMarkdown, maskedCrc32c, tfRecord, type TfEvent, type HistogramCounts, type HistogramInput, type TfEventsWriterOptions } from './tfevents.js';
