/**
 * The probe scheduler's queue of due times: a binary min-heap on (due, seq), with positions kept
 * in the items for O(log n) removal. Plain functions over the array, so the scheduler's hot path
 * makes no closure or object per operation.
 */

/** What the heap orders and tracks; the scheduler's entries carry these fields. */
export interface HeapItem {
  /** Due time, epoch ms. */
  due: number;
  /** Creation order; breaks ties between equal due times so order is deterministic. */
  seq: number;
  /** Position in the heap, -1 when not in it. */
  pos: number;
}

function before(a: HeapItem, b: HeapItem): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

function place<T extends HeapItem>(heap: T[], e: T, i: number): void {
  heap[i] = e;
  e.pos = i;
}

function siftUp<T extends HeapItem>(heap: T[], i: number): void {
  const e = heap[i]!;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(e, heap[parent]!)) break;
    place(heap, heap[parent]!, i);
    i = parent;
  }
  place(heap, e, i);
}

function siftDown<T extends HeapItem>(heap: T[], i: number): void {
  const e = heap[i]!;
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
    if (!before(heap[c]!, e)) break;
    place(heap, heap[c]!, i);
    i = c;
  }
  place(heap, e, i);
}

/** Adds an item that is not in the heap. */
export function heapPush<T extends HeapItem>(heap: T[], e: T): void {
  heap.push(e);
  siftUp(heap, heap.length - 1);
}

/** Takes an item out of the heap; does nothing when it is not in it. */
export function heapRemove<T extends HeapItem>(heap: T[], e: T): void {
  const i = e.pos;
  if (i < 0) return;
  e.pos = -1;
  const last = heap.pop()!;
  if (last === e) return;
  place(heap, last, i);
  siftUp(heap, i);
  siftDown(heap, last.pos);
}

/** Restores the order after an item's due time changed. */
export function heapFix<T extends HeapItem>(heap: T[], e: T): void {
  siftUp(heap, e.pos);
  siftDown(heap, e.pos);
}
