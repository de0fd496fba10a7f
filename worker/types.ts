export type EdgeEnv = {
  Variables: { user?: string; authFailure?: string };
};
