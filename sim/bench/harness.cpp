// Plain Verilator C++ harness of `make bench`: the doorbell workload of the cocotb speed run with
// no Python, to show what the simulator itself can do (sim/bench/speed.py builds and runs it).
//
//   harness STIMULUS N
//
// STIMULUS is written by sim/bench/speed.py from sim/bench/stimulus.py (the TLPs the cocotb run
// sends): lines "W <data width> <32-bit words per rx payload>", then setup TLPs
// "S <nonposted> <beats>" and doorbell TLPs "D <beats> <queue> <value>", each followed by its
// beats as "B <word 0> <word 1> ..." (hex, word 0 = payload bits 31:0).  The harness resets the
// model, sends the setup TLPs one at a time (a non-posted one waits for its completion, a posted
// one for 8 idle cycles; reset_req is answered with a reset_ack pulse), then sends N doorbell
// TLPs back to back (the D list, repeated) with every sink ready, checks that N doorbells come out
// in order with the right queue and value, and prints one JSON line with the cycles and the
// wall-clock and CPU seconds of that timed phase.
//
// Stream timing: inputs are set, the model is evaluated with clk low, the outputs read then are
// the values sampled by the rising edge that follows.
#include "Vtop.h"
#include "verilated.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

namespace {

struct Tlp {
    bool nonposted = false;
    uint32_t queue = 0, value = 0;
    std::vector<std::vector<uint32_t>> beats;
};

struct Stimulus {
    int width = 0, words = 0;
    std::vector<Tlp> setup, doorbells;
};

bool load(const char* path, Stimulus& s) {
    FILE* f = std::fopen(path, "r");
    if (!f) return false;
    char kind[4];
    Tlp* cur = nullptr;
    while (std::fscanf(f, "%3s", kind) == 1) {
        if (!std::strcmp(kind, "W")) {
            if (std::fscanf(f, "%d %d", &s.width, &s.words) != 2) return false;
        } else if (!std::strcmp(kind, "S")) {
            int np, n;
            if (std::fscanf(f, "%d %d", &np, &n) != 2) return false;
            s.setup.emplace_back();
            cur = &s.setup.back();
            cur->nonposted = np;
        } else if (!std::strcmp(kind, "D")) {
            int n;
            cur = &s.doorbells.emplace_back();
            if (std::fscanf(f, "%d %" SCNu32 " %" SCNx32, &n, &cur->queue, &cur->value) != 3)
                return false;
        } else if (!std::strcmp(kind, "B")) {
            if (!cur) return false;
            std::vector<uint32_t> beat(s.words);
            for (auto& w : beat)
                if (std::fscanf(f, "%" SCNx32, &w) != 1) return false;
            cur->beats.push_back(beat);
        } else {
            return false;
        }
    }
    std::fclose(f);
    return s.width && !s.doorbells.empty();
}

double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

class Harness {
  public:
    explicit Harness(VerilatedContext* ctx) : top(new Vtop{ctx}) {}

    // one clock cycle; returns after the rising edge.  rx_fire/db_fire/tx_fire/tx_last describe
    // the transfers of that edge.
    void cycle() {
        top->clk = 0;
        top->eval();
        rx_fire = top->rx___05Fvalid && top->rx___05Fready;
        db_fire = top->doorbell___05Fvalid && top->doorbell___05Fready;
        if (db_fire) db_payload = top->doorbell___05Fpayload;
        tx_fire = top->tx___05Fvalid && top->tx___05Fready;
        // tx payload: data, keep (lanes), first, last from bit 0; last is the top bit
        const int last_bit = width + width / 32 + 1;
        tx_last = tx_fire && ((top->tx___05Fpayload[last_bit / 32] >> (last_bit % 32)) & 1);
        bool req = top->reset_req;
        top->clk = 1;
        top->eval();
        ++cycles;
        // back-end model: answer a virtio reset request with a one-cycle reset_ack
        top->reset_ack = !top->reset_ack && req;
    }

    void drive(const std::vector<uint32_t>* beat) {
        if (beat) {
            for (size_t i = 0; i < beat->size(); ++i) top->rx___05Fpayload[i] = (*beat)[i];
            top->rx___05Fvalid = 1;
        } else {
            top->rx___05Fvalid = 0;
        }
    }

    std::unique_ptr<Vtop> top;
    int width = 128;
    uint64_t cycles = 0;
    bool rx_fire = false, db_fire = false, tx_fire = false, tx_last = false;
    uint64_t db_payload = 0;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s STIMULUS N\n", argv[0]);
        return 2;
    }
    Stimulus s;
    if (!load(argv[1], s)) {
        std::fprintf(stderr, "cannot read stimulus %s\n", argv[1]);
        return 2;
    }
    const long n = std::atol(argv[2]);
    auto ctx = std::make_unique<VerilatedContext>();
    Harness h(ctx.get());
    h.width = s.width;
    auto* t = h.top.get();
    t->tx___05Fready = 1;
    t->doorbell___05Fready = 1;
    t->qevent___05Fready = 1;
    t->rx___05Fvalid = 0;
    t->irq___05Fvalid = 0;
    t->reset_ack = 0;
    t->rst = 1;
    for (int i = 0; i < 4; ++i) h.cycle();
    t->rst = 0;
    h.cycle();

    // setup: one TLP at a time
    for (const Tlp& tlp : s.setup) {
        long cpls = 0;
        for (const auto& beat : tlp.beats) {
            h.drive(&beat);
            do {
                h.cycle();
                cpls += h.tx_last;
            } while (!h.rx_fire);
        }
        h.drive(nullptr);
        for (int wait = 0; tlp.nonposted ? cpls == 0 : wait < 8; ++wait) {
            if (wait > 1000) {
                std::fprintf(stderr, "setup: no completion\n");
                return 1;
            }
            h.cycle();
            cpls += h.tx_last;
        }
    }
    for (int i = 0; i < 16; ++i) h.cycle();

    // timed phase: N doorbells back to back
    const size_t period = s.doorbells.size();
    long sent = 0, seen = 0, errors = 0;
    size_t tlp = 0, beat = 0;
    const uint64_t c0 = h.cycles;
    const auto w0 = std::chrono::steady_clock::now();
    const double p0 = cpu_seconds();
    h.drive(&s.doorbells[0].beats[0]);
    while (seen < n) {
        h.cycle();
        if (h.db_fire) {
            const Tlp& want = s.doorbells[seen % period];
            uint32_t q = h.db_payload & 0xFFFF, v = (h.db_payload >> 16) & 0xFFFFFFFFu;
            if (q != want.queue || v != want.value) ++errors;
            ++seen;
        }
        if (h.rx_fire) {
            if (++beat == s.doorbells[tlp].beats.size()) {
                beat = 0;
                tlp = (tlp + 1) % period;
                ++sent;
            }
            h.drive(sent < n ? &s.doorbells[tlp].beats[beat] : nullptr);
        }
        if (h.cycles - c0 > 100 * (uint64_t)n + 1000) {
            std::fprintf(stderr, "timed phase stuck: %ld sent, %ld seen\n", sent, seen);
            return 1;
        }
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    const double cpu = cpu_seconds() - p0;
    const uint64_t cyc = h.cycles - c0;
    std::printf("{\"tlps\": %ld, \"cycles\": %" PRIu64 ", \"wall_s\": %.6f, \"cpu_s\": %.6f, "
                "\"cycles_per_s\": %.1f, \"tlps_per_s\": %.1f, \"cycles_per_cpu_s\": %.1f, "
                "\"tlps_per_cpu_s\": %.1f, \"errors\": %ld}\n",
                n, cyc, wall, cpu, cyc / wall, n / wall, cyc / cpu, n / cpu, errors);
    h.top->final();
    return errors ? 1 : 0;
}
