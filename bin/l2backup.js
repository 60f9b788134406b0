#!/usr/bin/env node
import { main } from '../dist/bundle/l2backup.js';

await main(process.argv);
