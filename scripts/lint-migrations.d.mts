export interface MigrationLint {
  findings: number;
  /** Findings with the project's reason, one line each. */
  explained: string[];
  unexplained: string[];
}
/** squawk over each up and down section of the migrations (see lint-migrations.mjs). */
export function lintMigrations(dir?: string): Promise<MigrationLint>;
