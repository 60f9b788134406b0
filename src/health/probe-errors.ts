/** Network errors in words: shared with the pinger (src/net/reason.ts), which backup uses too. */
export { networkReason } from '../net/reason.js';
