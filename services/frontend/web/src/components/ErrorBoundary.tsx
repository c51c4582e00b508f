import { Component, type ReactNode } from "react";

/** If a view ever throws while rendering, show a sentence and a way back instead of a blank page. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { failed: boolean }> {
  state = { failed: false };

  static getDerivedStateFromError(): { failed: boolean } {
    return { failed: true };
  }

  render() {
    if (this.state.failed) {
      return (
        <div className="notice" role="alert">
          <p className="notice-text">Something went wrong while showing this page.</p>
          <button type="button" className="secondary" onClick={() => window.location.assign("/")}>
            Back to the shop
          </button>
        </div>
      );
    }
    return this.props.children;
  }
}
