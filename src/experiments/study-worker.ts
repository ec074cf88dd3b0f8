// The child side of a study's grid under --jobs (runStudy → runPool): imports
// the study module named in the item (it exports `study`, its Study), opens
// its shared state once per child and protocol, and runs the spec; answers
// with the run's record (its error in it when the run threw).
import { pathToFileURL } from 'node:url';
import { runAndRecord, type Study } from './study.js';

type AnyStudy = Study<unknown, { id: string }, unknown, { id: string; result: unknown }, unknown, unknown, unknown>;

const opened = new Map<string, { study: AnyStudy; shared: unknown }>();

export async function runItem(item: { module: string; protocol: unknown; spec: { id: string } }): Promise<unknown> {
  const key = `${item.module}\n${JSON.stringify(item.protocol)}`;
  let o = opened.get(key);
  if (o === undefined) {
    const { study } = (await import(pathToFileURL(item.module).href)) as { study: AnyStudy };
    for (const [k, old] of opened) {
      old.study.dispose?.(old.shared);
      opened.delete(k);
    }
    o = { study, shared: study.open(item.protocol) };
    opened.set(key, o);
  }
  return runAndRecord(o.study, item.spec, o.shared, item.protocol);
}
