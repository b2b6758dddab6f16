import { loggableError } from '../core/index.js';

/** What `guardProcess` logs through: the server's logger (pino). */
export interface GuardLog {
  error(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

/**
 * Routes what would otherwise end a server silently, or as a raw stack between its JSON log
 * lines, through its logger. An unhandled promise rejection is logged and the server goes on: one
 * failed background operation must not stop every request. An uncaught exception is logged as
 * fatal and `onFatal` is called once, to shut down and exit non-zero: after one, the state of the
 * process is unknown. Returns the function that removes both handlers.
 */
export function guardProcess(log: GuardLog, onFatal: () => void): () => void {
  let fatal = false;
  const rejection = (reason: unknown) => log.error({ err: loggableError(reason) }, 'unhandled promise rejection');
  const exception = (err: unknown) => {
    log.fatal({ err: loggableError(err) }, 'uncaught exception; shutting down');
    if (fatal) return;
    fatal = true;
    onFatal();
  };
  process.on('unhandledRejection', rejection);
  process.on('uncaughtException', exception);
  return () => {
    process.off('unhandledRejection', rejection);
    process.off('uncaughtException', exception);
  };
}
