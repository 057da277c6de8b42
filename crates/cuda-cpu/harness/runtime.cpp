// Runs a CUDA kernel on the CPU (see cuda_cpu.h): blocks one after another, the threads of a
// block as fibers (ucontext) on this OS thread, switched only where CUDA threads wait for each
// other. Barriers count their arrivals, warp operations wait for exactly the lanes of their mask,
// and anything CUDA would hang on or leave undefined is an error naming where it happened.
#include "cuda_cpu.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <ucontext.h>
#include <vector>

#include "runtime.h"

namespace cucpu {

namespace {

enum class State { Ready, AtBarrier, AtWarp, Done };

struct Fiber {
  ucontext_t ctx;
  ThreadCtx tc;
  State st = State::Ready;
  const char *site = "";
  unsigned mask = 0;
  uint64_t value = 0;
  uint64_t got[32];
  unsigned lane = 0, warp = 0;
};

struct Run {
  std::vector<Fiber> f;
  std::vector<char> stacks;
  size_t stack_size = 0;
  std::vector<unsigned char> smem;
  ucontext_t sched;
  size_t cur = 0;
  const std::function<void()> *body = nullptr;
  bool failed = false;
  std::string err;
};

thread_local Run *R = nullptr;
thread_local std::string last_error;

void entry() {
  (*R->body)();
  R->f[R->cur].st = State::Done;
  // uc_link returns to the scheduler.
}

// Out of line: getcontext returns twice in the compiler's eyes, which would make it distrust
// every local of the caller.
__attribute__((noinline)) void start_fiber(Fiber &f, char *stack, size_t size, ucontext_t *link) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = size;
  f.ctx.uc_link = link;
  makecontext(&f.ctx, entry, 0);
}

void yield() {
  Fiber &f = R->f[R->cur];
  swapcontext(&f.ctx, &R->sched);
}

std::string where(const Fiber &f) {
  char b[160];
  std::snprintf(b, sizeof b, "thread (%u,%u,%u) of block (%u,%u,%u)", f.tc.tid.x, f.tc.tid.y,
                f.tc.tid.z, f.tc.bid.x, f.tc.bid.y, f.tc.bid.z);
  return b;
}

// Releases whatever can be released; false when nothing was (and nothing is ready).
bool release(Run &r) {
  bool any = false;
  size_t n = r.f.size();
  size_t warps = (n + 31) / 32;
  for (size_t w = 0; w < warps; w++) {
    // The first waiting lane's mask decides; every lane of it must be waiting with the same one.
    Fiber *lead = nullptr;
    for (size_t l = 0; l < 32 && w * 32 + l < n; l++)
      if (r.f[w * 32 + l].st == State::AtWarp) {
        lead = &r.f[w * 32 + l];
        break;
      }
    if (!lead)
      continue;
    unsigned mask = lead->mask;
    bool ready = true;
    for (unsigned l = 0; l < 32; l++) {
      if (!(mask >> l & 1u))
        continue;
      size_t i = w * 32 + l;
      if (i >= n) {
        r.failed = true;
        r.err = std::string("warp operation at ") + lead->site + " names lanes the block does not have";
        return false;
      }
      Fiber &f = r.f[i];
      if (f.st == State::Done) {
        r.failed = true;
        r.err = std::string("warp operation at ") + lead->site + " waits for " + where(f) +
                ", which has exited";
        return false;
      }
      if (f.st != State::AtWarp) {
        ready = false;
        continue;
      }
      if (f.mask != mask) {
        r.failed = true;
        r.err = std::string("lanes of one warp wait with different masks at ") + lead->site +
                " and " + f.site;
        return false;
      }
    }
    if (!(mask >> lead->lane & 1u)) {
      r.failed = true;
      r.err = std::string("warp operation at ") + lead->site + ": the calling lane is not in its mask";
      return false;
    }
    if (!ready)
      continue;
    uint64_t vals[32] = {0};
    for (unsigned l = 0; l < 32; l++)
      if (mask >> l & 1u)
        vals[l] = r.f[w * 32 + l].value;
    for (unsigned l = 0; l < 32; l++)
      if (mask >> l & 1u) {
        Fiber &f = r.f[w * 32 + l];
        std::memcpy(f.got, vals, sizeof vals);
        f.st = State::Ready;
      }
    any = true;
  }
  if (any)
    return true;
  // A block barrier: every thread that has not exited must be at it, at the same one.
  const char *site = nullptr;
  size_t alive = 0, at = 0;
  for (auto &f : r.f) {
    if (f.st == State::Done)
      continue;
    alive++;
    if (f.st == State::AtBarrier) {
      at++;
      if (!site)
        site = f.site;
      else if (std::strcmp(site, f.site) != 0) {
        r.failed = true;
        r.err = std::string("threads of one block wait at two different __syncthreads: ") + site +
                " and " + f.site + " (" + where(f) + ")";
        return false;
      }
    }
  }
  if (alive > 0 && at == alive) {
    for (auto &f : r.f)
      if (f.st == State::AtBarrier)
        f.st = State::Ready;
    return true;
  }
  return false;
}

std::string stuck(const Run &r) {
  std::string s = "the block cannot go on:";
  int shown = 0;
  for (auto &f : r.f) {
    if (f.st == State::Done || shown >= 4)
      continue;
    s += " " + where(f) + (f.st == State::AtBarrier ? " waits at __syncthreads " : " waits at a warp operation ") +
         f.site + ";";
    shown++;
  }
  return s;
}

} // namespace

ThreadCtx *current() { return &R->f[R->cur].tc; }

unsigned lane() { return R->f[R->cur].lane; }

void *dynamic_smem() { return R->smem.data(); }

void syncthreads(const char *site) {
  Fiber &f = R->f[R->cur];
  f.st = State::AtBarrier;
  f.site = site;
  yield();
}

const uint64_t *warp_exchange(unsigned mask, uint64_t value, const char *site) {
  Fiber &f = R->f[R->cur];
  f.st = State::AtWarp;
  f.site = site;
  f.mask = mask;
  f.value = value;
  yield();
  return R->f[R->cur].got;
}

void syncwarp(unsigned mask, const char *site) { warp_exchange(mask, 0, site); }

void fail(const char *msg, const char *site) {
  R->failed = true;
  R->err = std::string(msg) + " at " + site + " (" + where(R->f[R->cur]) + ")";
  Fiber &f = R->f[R->cur];
  f.st = State::Done;
  swapcontext(&f.ctx, &R->sched);
  std::abort(); // never resumed
}

int run(const Launch &l, const std::function<void()> &body) {
  size_t nthreads = (size_t)l.block[0] * l.block[1] * l.block[2];
  if (nthreads == 0 || nthreads > 1024) {
    last_error = "a block has 1 to 1024 threads";
    return 1;
  }
  Run r;
  r.body = &body;
  r.stack_size = l.stack_bytes ? l.stack_bytes : (size_t)64 << 10;
  r.stacks.resize(nthreads * r.stack_size);
  r.f.resize(nthreads);
  r.smem.resize(l.shared_bytes ? l.shared_bytes : 1);
  Run *saved = R;
  R = &r;
  std::vector<dim3> blocks;
  for (unsigned z = 0; z < l.grid[2]; z++)
    for (unsigned y = 0; y < l.grid[1]; y++)
      for (unsigned x = 0; x < l.grid[0]; x++)
        blocks.push_back(dim3(x, y, z));
  std::mt19937_64 rng(l.seed);
  if (l.schedule == SCHEDULE_REVERSE)
    std::reverse(blocks.begin(), blocks.end());
  else if (l.schedule == SCHEDULE_RANDOM)
    std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<size_t> order(nthreads);
  for (const dim3 &b : blocks) {
    // Uninitialised shared memory reads as NaN (and as -1 for integers).
    std::memset(r.smem.data(), 0xff, r.smem.size());
    size_t i = 0;
    for (unsigned z = 0; z < l.block[2]; z++)
      for (unsigned y = 0; y < l.block[1]; y++)
        for (unsigned x = 0; x < l.block[0]; x++, i++) {
          Fiber &f = r.f[i];
          f.tc = ThreadCtx{dim3(x, y, z), b, dim3(l.block[0], l.block[1], l.block[2]),
                           dim3(l.grid[0], l.grid[1], l.grid[2])};
          f.st = State::Ready;
          f.lane = (unsigned)(i % 32);
          f.warp = (unsigned)(i / 32);
          start_fiber(f, r.stacks.data() + i * r.stack_size, r.stack_size, &r.sched);
        }
    for (;;) {
      for (size_t k = 0; k < nthreads; k++)
        order[k] = l.schedule == SCHEDULE_REVERSE ? nthreads - 1 - k : k;
      if (l.schedule == SCHEDULE_RANDOM)
        std::shuffle(order.begin(), order.end(), rng);
      bool ran = false;
      for (size_t k : order) {
        if (r.f[k].st != State::Ready)
          continue;
        r.cur = k;
        swapcontext(&r.sched, &r.f[k].ctx);
        ran = true;
        if (r.failed)
          break;
      }
      if (r.failed)
        break;
      bool alive = false;
      for (auto &f : r.f)
        alive |= f.st != State::Done;
      if (!alive)
        break;
      if (!release(r) && !ran) {
        if (!r.failed) {
          r.failed = true;
          r.err = stuck(r);
        }
        break;
      }
      if (r.failed)
        break;
    }
    if (r.failed)
      break;
  }
  R = saved;
  if (r.failed) {
    last_error = r.err;
    return 1;
  }
  return 0;
}

} // namespace cucpu

extern "C" const char *cucpu_last_error() { return cucpu::last_error.c_str(); }
