// How a failure of the application's client reaches the wasm core: a rejection with the client's
// words and whether the request (or transaction) may have run — `timeout` (the outcome unknown)
// when it may have, `backend_unavailable` when it was never written.

/** What a host's `send` or `run` rejects with when it could not carry a request. */
export const notCarried = (error: unknown, mayHaveRun: boolean) => ({
  message: error instanceof Error ? error.message : String(error),
  mayHaveRun,
});
