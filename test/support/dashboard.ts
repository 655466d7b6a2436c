// deploy/grafana/tessera.json as the dashboard tests read it: its shape, its panels and queries.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  fieldConfig?: {
    defaults?: { unit?: string; thresholds?: { steps: { value: number | null }[] } };
  };
  targets?: Target[];
  panels?: Panel[];
}
export interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  datasource?: { type?: string; uid?: string };
  multi?: boolean;
  includeAll?: boolean;
}
export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  id?: number | null;
  templating: { list: Variable[] };
  panels: Panel[];
}

export const DASHBOARD_FILE = 'deploy/grafana/tessera.json';

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested ones included. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every query: the panels' expressions and the variables' label_values queries. */
export function queries(d: Dashboard): { where: string; expr: string; variable: boolean }[] {
  const out: { where: string; expr: string; variable: boolean }[] = [];
  for (const p of allPanels(d))
    for (const t of p.targets ?? [])
      out.push({ where: `${p.title} ${t.refId}`, expr: t.expr, variable: false });
  for (const v of d.templating.list)
    if (v.type === 'query') {
      const expr = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
      out.push({ where: `variable ${v.name}`, expr, variable: true });
    }
  return out;
}

/** The dashboard with `change` applied to a copy of one panel's first query. */
export function withQuery(dashboard: Dashboard, change: (expr: string) => string, title: string): Dashboard {
  const copy = structuredClone(dashboard);
  const target = allPanels(copy).find((p) => p.title === title)?.targets?.[0];
  assert.ok(target, `panel ${title}`);
  target.expr = change(target.expr);
  return copy;
}
