// The server's one draining state: set by the graceful shutdown (its only writer) when it begins;
// read by readiness, stream admission and publishing, which refuse from then on.
export class Lifecycle {
  draining = false;
}
