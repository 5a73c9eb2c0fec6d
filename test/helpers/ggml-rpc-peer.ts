// The ggml-rpc peer (lib/demo/ggml-rpc-peer.ts), closed when the test finishes.
import { onTestFinished } from 'vitest';

import { startGgmlRpcPeer, type GgmlRpcPeer, type PeerOptions } from '../../lib/demo/ggml-rpc-peer.js';

export async function ggmlRpcPeer(options: PeerOptions): Promise<GgmlRpcPeer> {
  const peer = await startGgmlRpcPeer(options);
  onTestFinished(() => peer.close());
  return peer;
}
