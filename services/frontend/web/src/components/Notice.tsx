import type { Problem } from "../friendly";

/** A failed call as a shopper sees it: one friendly sentence, a retry when it makes sense, and
 * the technical detail in small print for the learner. */
export function Notice({ problem, onRetry, retryLabel = "Try again" }: { problem: Problem; onRetry?: () => void; retryLabel?: string }) {
  const technical = [problem.status === null ? "no answer" : `HTTP ${problem.status}`, problem.code, problem.detail]
    .filter(Boolean)
    .join(" · ");
  return (
    <div className="notice" role="alert">
      <p className="notice-text">{problem.friendly}</p>
      <p className="notice-detail">{technical}</p>
      {onRetry && (
        <button type="button" className="secondary" onClick={onRetry}>
          {retryLabel}
        </button>
      )}
    </div>
  );
}
