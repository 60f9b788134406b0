#!/usr/bin/env node
import { main } from '../dist/cli/l2alert.js';

await main(process.argv);
