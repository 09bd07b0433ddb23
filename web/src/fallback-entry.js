// Entry point of the fallback bundle (portal/static/dist/aes-fallback.js),
// loaded only on pages without crypto.subtle: registers the pure-JS backend
// for crypto.js to pick up (PortalCrypto.useFallback).

import { nobleBackend } from './backend-noble.js';

self.PortalCryptoFallback = nobleBackend;
