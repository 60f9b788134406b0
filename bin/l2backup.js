#!/usr/bin/env node
import { main } from '../dist/cli/l2backup.js';

await main(process.argv);
