/** The signals that stop a long-running command: Ctrl-C, a supervisor's stop, a closed terminal. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface StopSignalOptions {
  /** Told of the first signal (the graceful stop begins). */
  onFirst?: (sig: NodeJS.Signals) => void;
  /** Called on a second signal just before the process exits with 130; it must not wait on the event loop. */
  urgent?: (sig: NodeJS.Signals) => void;
  /** Hold the process open until the first signal, for a command that may otherwise have nothing left to wait on. */
  keepAlive?: boolean;
}

export interface StopSignals {
  /** Resolves with the first SIGINT, SIGTERM or SIGHUP. */
  readonly received: Promise<NodeJS.Signals>;
  /** Stops listening (and holding the process open). */
  dispose(): void;
}

/**
 * The one way a command stops on a signal: the first SIGINT, SIGTERM or SIGHUP resolves `received` and the command
 * stops gracefully; a second one ends the process at once (exit 130).
 */
export function onStopSignals(options: StopSignalOptions = {}): StopSignals {
  let resolve: (sig: NodeJS.Signals) => void = () => undefined;
  const received = new Promise<NodeJS.Signals>((r) => (resolve = r));
  let keepAlive = options.keepAlive ? setInterval(() => undefined, 1 << 30) : undefined;
  let seen = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (seen) {
      options.urgent?.(sig);
      process.exit(130);
    }
    seen = true;
    clearInterval(keepAlive);
    keepAlive = undefined;
    options.onFirst?.(sig);
    resolve(sig);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  return {
    received,
    dispose() {
      clearInterval(keepAlive);
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
    },
  };
}
