#!/usr/bin/env node
import { main } from '../dist/bundle/l2alert.js';

await main(process.argv);
