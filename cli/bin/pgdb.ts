#!/usr/bin/env node
import { hideBin } from 'yargs/helpers';
import { processContext } from '../src/context.js';
import { exitProcess } from '../src/errors.js';
import { runCli } from '../src/main.js';

await exitProcess(await runCli(hideBin(process.argv), processContext()));
