// Removes the template database globalSetup.mjs made, and the run's directory in memory
// (jest.config.js) with whatever a test left in it.
import fs from 'node:fs';
import pg from 'pg';

export default async function globalTeardown() {
  await removeTemplate();
  // Only a directory jest.config.js made (its MEMORY_TMP_PREFIX), never one the variable was
  // pointed at from outside.
  const memoryTmp = process.env.SESAME_TEST_TMPDIR;
  if (memoryTmp?.startsWith('/dev/shm/sesame-tests-')) fs.rmSync(memoryTmp, { recursive: true, force: true });
}

async function removeTemplate() {
  const template = process.env.SESAME_TEST_TEMPLATE;
  if (!template) return;
  if (process.env.DATABASE_URL) {
    const admin = new pg.Client({
      connectionString: process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL,
    });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${template} with (force)`);
    } finally {
      await admin.end();
    }
  } else {
    fs.rmSync(template, { recursive: true, force: true });
  }
}
