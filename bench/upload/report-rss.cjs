// Preloaded into a process (node -r) to print its peak resident set size when it exits.
process.on('exit', () => {
  process.stderr.write(`maxrss_kib=${process.resourceUsage().maxRSS}\n`);
});
