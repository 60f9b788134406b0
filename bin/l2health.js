#!/usr/bin/env node
import { main } from '../dist/cli/l2health.js';

await main(process.argv);
