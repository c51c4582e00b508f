import { describe, expect, it } from "vitest";
import { describeFailure } from "./friendly";

describe("describeFailure", () => {
  it("turns an injected fault into a sentence and keeps the code for the small print", () => {
    const p = describeFailure(500, { error: { code: "injected_fault", message: "injected error" } }, "load the catalogue");
    expect(p.friendly).toBe("We could not load the catalogue: something went wrong on our side. Please try again.");
    expect(p.code).toBe("injected_fault");
  });

  it.each([
    [503, "part of the shop is unavailable"],
    [504, "took too long"],
    [429, "busy"],
    [403, "access policy"],
    [null, "not answering"],
  ])("says what a %s means", (status, words) => {
    expect(describeFailure(status, null, "place your order").friendly).toContain(words);
  });

  it("names the fields to fix and recognises a taken email", () => {
    const invalid = describeFailure(422, { error: { code: "invalid_request", fields: [{ field: "body.password", message: "short" }] } }, "x");
    expect(invalid.friendly).toBe("Please check password and try again.");
    const taken = describeFailure(409, { error: { code: "conflict", message: "email already registered" } }, "x");
    expect(taken.friendly).toContain("already exists");
  });
});
