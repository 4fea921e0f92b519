-- Up Migration
-- Eager billing roll (hourly; the lazy roll on write keeps enforcement exact between runs) and the nightly
-- drift repair. Each job is one call of a function that guards itself with a try-advisory-lock.
SELECT cron.schedule('billing-period-reset', '7 * * * *', $$SELECT public.reset_billing_periods(10000)$$);
SELECT cron.schedule('storage-usage-reconcile', '17 3 * * *', $$SELECT public.reconcile_storage_usage()$$);

-- Down Migration
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'billing-period-reset';
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'storage-usage-reconcile';
