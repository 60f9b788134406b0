#!/usr/bin/env node
import { main } from '../dist/bundle/l2health.js';

await main(process.argv);
