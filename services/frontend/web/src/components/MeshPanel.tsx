import { useState } from "react";
import { useMeshCalls, type MeshCall } from "../mesh";

function statusClass(status: number | null): string {
  if (status === null || status >= 500) return "bad";
  if (status >= 400) return "warn";
  return "good";
}

function Chain({ call }: { call: MeshCall }) {
  if (call.hops.length === 0) {
    return <span className="hop none">{call.status === null ? "no answer" : "no pod named itself"}</span>;
  }
  return (
    <>
      {call.hops.map((hop, i) => (
        <span key={i} className={`hop version-${hop.version}`} data-service={hop.service} data-version={hop.version} title={hop.pod}>
          {i > 0 && <span className="arrow" aria-hidden="true">→</span>}
          {hop.service} <b>{hop.version}</b> <span className="pod">{hop.pod}</span>
        </span>
      ))}
    </>
  );
}

/** Which pod and version served each call (from the services' `x-served-by` header), newest
 * first: shift traffic to product v2 or inject a fault, and it shows here. */
export function MeshPanel() {
  const calls = useMeshCalls();
  const [open, setOpen] = useState(true);
  return (
    <aside id="mesh-panel" className={open ? "open" : "closed"} aria-label="Mesh panel">
      <button type="button" className="mesh-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
        Mesh: who served each call {open ? "▾" : "▸"}
      </button>
      {open && (
        <ol className="mesh-calls">
          {calls.length === 0 && <li className="mesh-empty">No calls yet.</li>}
          {calls.map((call) => (
            <li key={call.id} className="mesh-call" data-status={call.status ?? "none"}>
              <span className="mesh-request">
                {call.method} {call.path}
              </span>
              <span className={`mesh-status ${statusClass(call.status)}`}>{call.status ?? "—"}</span>
              <span className="mesh-ms">{Math.round(call.ms)} ms</span>
              <span className="mesh-chain">
                <Chain call={call} />
              </span>
            </li>
          ))}
        </ol>
      )}
    </aside>
  );
}
