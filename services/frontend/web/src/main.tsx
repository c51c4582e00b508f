import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { readInitialState } from "./initial";
import "./styles.css";

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App embedded={readInitialState()} />
    </StrictMode>,
  );
}
