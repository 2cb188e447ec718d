// Bun's own Bun.serve, captured before the preload replaces it (module bodies
// run before preload.ts assigns Bun.serve).
export const nativeServe: typeof Bun.serve = Bun.serve;
