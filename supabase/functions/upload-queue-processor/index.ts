// Supabase Edge Function "upload-queue-processor": stores the uploads waiting in Neotoma's upload queue within a
// time budget and answers with a JSON summary of what it did. Called every minute by pg_cron (see
// docs/supabase.md); only a caller presenting the service-role key is served.
//
// processor.mjs is built from src/edge/ by `npm run build:edge` (run it before `supabase functions deploy`).
import { uploadQueueProcessorFromEnv } from './processor.mjs';

const handle: (request: Request) => Promise<Response> = uploadQueueProcessorFromEnv(Deno.env.toObject());

Deno.serve(handle);
