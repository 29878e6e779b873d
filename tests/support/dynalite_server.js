// In-memory dynalite on a free port, for tests (started by tests/support/dynalite.py).
// Why a script: `dynalite --port 0` does not pick a free port (it falls back to 4567), so we
// listen(0) here and print the chosen port as the first line of stdout.
// The server exits when stdin closes, so it never outlives the Python process that started it.
'use strict';

const dynalite = require('dynalite');

// Tables become ACTIVE at once: tests should not wait 500 ms per CreateTable/DeleteTable.
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });

server.on('error', (err) => {
  console.error(`dynalite server error: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});

// Exit at once: close() would wait for idle keep-alive connections from boto3.
const shutdown = () => process.exit(0);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
