/** The shared folder beside the repository (or NEOTOMA_SHARED_DIR). */
export function sharedDir(): string;
/** Why the real Storage server cannot run here, or undefined when it can. */
export function storageServerMissing(): string | undefined;

export interface StorageServer {
  /** The project URL: the gateway serving the Storage API under /storage/v1. */
  url: string;
  serviceRoleKey: string;
  anonKey: string;
  /** A secret key (`sb_secret_…`), which the gateway accepts as the platform does. */
  secretKey: string;
  /** `{"default":"sb_secret_…"}`, as Supabase gives Edge Functions in SUPABASE_SECRET_KEYS. */
  secretKeys: string;
  jwtSecret: string;
  state: string;
  stopServer(): Promise<void>;
  stopGateway(): Promise<void>;
  stop(): Promise<void>;
}

export function startStorageServer(options: { databaseUrl: string; fileSizeLimit?: number }): Promise<StorageServer>;
export function denoBinary(): string;
export const EDGE_FUNCTION_DIR: string;

export interface EdgeFunction {
  url: string;
  /** What the function printed (its logs). */
  output: string[];
  stop(): Promise<void>;
}

export function startEdgeFunction(env: Record<string, string>, options?: { denoDir?: string }): Promise<EdgeFunction>;
