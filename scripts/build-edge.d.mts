export const EDGE_FUNCTION_DIR: string;
export const EDGE_MODULE: string;
export function buildEdgeFunction(outfile?: string): Promise<string>;
