// The mesh panel's data: one entry per API call the page made, with the pods that served it.
//
// Every service adds itself to the `x-served-by` response header ("service/version/pod",
// comma-separated, the answering pod first, then the pods it called), so the page can show
// which versions a click went through: a canary or a fault shows up here.

import { useSyncExternalStore } from "react";

export const SERVED_BY = "x-served-by";

export interface Hop {
  service: string;
  version: string;
  pod: string;
}

export interface MeshCall {
  id: number;
  method: string;
  path: string;
  /** null: no answer at all (the browser could not reach the shop) */
  status: number | null;
  ms: number;
  hops: Hop[];
  /** Envoy's x-envoy-upstream-service-time at the ingress gateway, when present */
  upstreamMs: number | null;
}

/** `frontend/v1/frontend-v1-0, product/v2/product-v2-0` -> hops, in order. */
export function parseServedBy(value: string | null | undefined): Hop[] {
  if (!value) return [];
  const hops: Hop[] = [];
  for (const part of value.split(",")) {
    const [service, version, ...pod] = part.trim().split("/");
    if (service && version) hops.push({ service, version, pod: pod.join("/") || "?" });
  }
  return hops;
}

/** The version of `service` in a chain of hops, if it took part. */
export function versionOf(hops: Hop[], service: string): string | null {
  return hops.find((h) => h.service === service)?.version ?? null;
}

const LIMIT = 12;
let calls: MeshCall[] = [];
let nextId = 1;
const listeners = new Set<() => void>();

export function recordCall(call: Omit<MeshCall, "id">): void {
  calls = [{ ...call, id: nextId++ }, ...calls].slice(0, LIMIT);
  for (const listener of listeners) listener();
}

export function clearCalls(): void {
  calls = [];
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function snapshot(): MeshCall[] {
  return calls;
}

/** The latest calls, newest first (re-renders on every new call). */
export function useMeshCalls(): MeshCall[] {
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}
