import { describe, expect, it } from "vitest";
import { parseServedBy, versionOf } from "./mesh";

describe("parseServedBy", () => {
  it("reads the chain of pods in order", () => {
    const hops = parseServedBy("frontend/v1/frontend-v1-0, api-gateway/v1/api-gateway-v1-0,product/v2/product-v2-7f9c");
    expect(hops).toEqual([
      { service: "frontend", version: "v1", pod: "frontend-v1-0" },
      { service: "api-gateway", version: "v1", pod: "api-gateway-v1-0" },
      { service: "product", version: "v2", pod: "product-v2-7f9c" },
    ]);
    expect(versionOf(hops, "product")).toBe("v2");
    expect(versionOf(hops, "payment")).toBeNull();
  });

  it("ignores a missing header and malformed entries", () => {
    expect(parseServedBy(null)).toEqual([]);
    expect(parseServedBy(" , nonsense, product/v1")).toEqual([{ service: "product", version: "v1", pod: "?" }]);
  });
});
