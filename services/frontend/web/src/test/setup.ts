import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";
import { clearCalls } from "../mesh";

afterEach(() => {
  cleanup();
  clearCalls();
  window.sessionStorage.clear();
  window.location.hash = "";
});
