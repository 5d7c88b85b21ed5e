// Cycle-level side of the accelerator testbench: the off-chip memory and the instruction feeder, called once per
// rising clock edge from the generated SystemVerilog wrapper (testbench/wrapper.py) through DPI-C.
//
// cocotb stays at the transaction level: it writes a job's files, pulses LOAD, releases reset, waits for
// `tb_finished` and pulses DUMP; everything that happens every cycle happens here, in the simulator's process.
// Timing contract (docs/execution-model.md section 2, docs/verification.md): a read request taken at rising edge r
// (rd_req_valid & rd_req_ready before the edge) is answered with rd_resp_valid/rd_resp_data sampled by the DUT at
// edge r + L (exact mode), in request order, one per cycle; writes are posted; bit j of a beat is memory bit
// addr + j. The stalling mode drops ready signals and instruction valids at random and delays responses by up to
// `resp_extra_max` extra cycles (order kept). Files of job N in $JAQ_TB_DIR: tbN.cfg (key value lines), tbN.mem
// (the flat memory image), tbN.prog (instruction words, little-endian, ceil(instr_bits/32) uint32 each); DUMP
// writes tbN.out (final memory) and tbN.json (memory monitor, counters at marks, cycles).
#include <svdpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int kTags = 8;
constexpr int kMaxViolations = 20;

struct Pending {
    int64_t due, addr, req;
    int nbits;
};

struct Job {
    int number = -1;
    // configuration
    int width = 0, latency = 1, mark_opcode = -1, opcode_bits = 4, resp_extra_max = 3;
    bool stall = false;
    double rd_ready_p = 0.6, wr_ready_p = 0.6, gap_p = 0.3;
    std::mt19937_64 rng;
    std::vector<uint8_t> mem;
    std::vector<std::vector<uint32_t>> prog;
    // state
    bool armed = false, started = false, finished = false;
    int64_t cycle = 0, first_accept = -1, finish_cycle = -1, last_due = -1;
    size_t index = 0;
    bool rd_ready = false, wr_ready = false, instr_valid = false;
    std::deque<Pending> pending;
    // monitor
    int64_t rd_beats[kTags] = {}, rd_bits[kTags] = {}, wr_beats = 0, wr_bits = 0;
    int64_t min_lat = -1, max_lat = -1, instructions = 0;
    std::vector<std::string> violations;
    std::vector<std::vector<uint64_t>> marks;
    std::string counter_names;  // comma-separated, the order of the counters vector
};

Job g;

std::string job_path(int n, const char* ext) {
    const char* dir = std::getenv("JAQ_TB_DIR");
    std::ostringstream s;
    s << (dir ? dir : ".") << "/tb" << n << ext;
    return s.str();
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "jaq transactor: cannot read %s\n", path.c_str());
        return {};
    }
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void violation(const std::string& msg) {
    if (static_cast<int>(g.violations.size()) < kMaxViolations)
        g.violations.push_back("cycle " + std::to_string(g.cycle) + ": " + msg);
}

bool chance(double p) { return std::uniform_real_distribution<double>(0.0, 1.0)(g.rng) < p; }

// `nbits` (<= 32) bits of the memory from bit `addr`, LSB first; bits beyond the memory read as 0.
uint32_t mem_bits32(int64_t addr, int nbits) {
    uint64_t v = 0;
    int64_t byte = addr >> 3;
    for (int i = 0; i < 5; ++i) {
        int64_t b = byte + i;
        if (b >= 0 && b < static_cast<int64_t>(g.mem.size())) v |= static_cast<uint64_t>(g.mem[b]) << (8 * i);
    }
    v >>= (addr & 7);
    return nbits >= 32 ? static_cast<uint32_t>(v) : static_cast<uint32_t>(v & ((1ull << nbits) - 1));
}

void mem_read(int64_t addr, int nbits, svBitVecVal* out, int width) {
    for (int w = 0; w < (width + 31) / 32; ++w) {
        int take = nbits - 32 * w;
        out[w] = take <= 0 ? 0 : mem_bits32(addr + 32 * w, take > 32 ? 32 : take);
    }
}

int vec_bit(const svBitVecVal* v, int64_t i) { return (v[i >> 5] >> (i & 31)) & 1; }

void mem_write(int64_t addr, int nbits, const svBitVecVal* data) {
    int64_t i = 0;
    while (i < nbits) {
        int64_t a = addr + i, byte = a >> 3;
        int sh = static_cast<int>(a & 7);
        int n = 8 - sh;
        if (n > nbits - i) n = static_cast<int>(nbits - i);
        uint8_t bits = 0;
        for (int k = 0; k < n; ++k) bits |= vec_bit(data, i + k) << k;
        uint8_t mask = static_cast<uint8_t>(((1u << n) - 1) << sh);
        g.mem[byte] = static_cast<uint8_t>((g.mem[byte] & ~mask) | ((bits << sh) & mask));
        i += n;
    }
}

bool check(const char* what, int tag, int64_t addr, int nbits) {
    if (tag < 0 || tag >= kTags) {
        violation(std::string(what) + " tagged with unknown tensor id " + std::to_string(tag));
    } else if (nbits < 1 || nbits > g.width) {
        violation(std::string(what) + " of " + std::to_string(nbits) + " bits in one beat (1.." +
                  std::to_string(g.width) + " allowed)");
    } else if (addr < 0 || addr + nbits > static_cast<int64_t>(g.mem.size()) * 8) {
        violation(std::string(what) + " of bits [" + std::to_string(addr) + ", " + std::to_string(addr + nbits) +
                  ") beyond the " + std::to_string(g.mem.size() * 8) + "-bit memory");
    } else {
        return true;
    }
    return false;
}

void load(int n) {
    Job fresh;
    fresh.number = n;
    std::ifstream cfg(job_path(n, ".cfg"));
    std::string key;
    uint64_t seed = 1;
    int instr_bits = 0;
    while (cfg >> key) {
        if (key == "width") cfg >> fresh.width;
        else if (key == "latency") cfg >> fresh.latency;
        else if (key == "stall") cfg >> fresh.stall;
        else if (key == "seed") cfg >> seed;
        else if (key == "mark_opcode") cfg >> fresh.mark_opcode;
        else if (key == "opcode_bits") cfg >> fresh.opcode_bits;
        else if (key == "instr_bits") cfg >> instr_bits;
        else if (key == "rd_ready_p") cfg >> fresh.rd_ready_p;
        else if (key == "wr_ready_p") cfg >> fresh.wr_ready_p;
        else if (key == "gap_p") cfg >> fresh.gap_p;
        else if (key == "resp_extra_max") cfg >> fresh.resp_extra_max;
        else { std::string skip; cfg >> skip; }
    }
    fresh.rng.seed(seed);
    fresh.mem = read_file(job_path(n, ".mem"));
    std::vector<uint8_t> p = read_file(job_path(n, ".prog"));
    size_t words = (instr_bits + 31) / 32;
    if (words) {
        for (size_t o = 0; o + 4 * words <= p.size(); o += 4 * words) {
            std::vector<uint32_t> w(words);
            for (size_t k = 0; k < words; ++k)
                w[k] = p[o + 4 * k] | p[o + 4 * k + 1] << 8 | p[o + 4 * k + 2] << 16 |
                       static_cast<uint32_t>(p[o + 4 * k + 3]) << 24;
            fresh.prog.push_back(std::move(w));
        }
    }
    fresh.armed = true;
    g = std::move(fresh);
}

void dump() {
    {
        std::ofstream f(job_path(g.number, ".out"), std::ios::binary);
        f.write(reinterpret_cast<const char*>(g.mem.data()), static_cast<std::streamsize>(g.mem.size()));
    }
    std::ofstream j(job_path(g.number, ".json"));
    auto arr = [&](const int64_t* v) {
        std::ostringstream s;
        s << "[";
        for (int t = 0; t < kTags; ++t) s << (t ? ", " : "") << v[t];
        return s.str() + "]";
    };
    j << "{\"finished\": " << (g.finished ? "true" : "false") << ", \"cycles\": "
      << (g.finish_cycle >= 0 && g.first_accept >= 0 ? g.finish_cycle - g.first_accept : g.cycle)
      << ", \"rd_beats\": " << arr(g.rd_beats) << ", \"rd_bits\": " << arr(g.rd_bits) << ", \"wr_beats\": "
      << g.wr_beats << ", \"wr_bits\": " << g.wr_bits << ", \"min_latency\": " << g.min_lat
      << ", \"max_latency\": " << g.max_lat << ", \"instructions\": " << g.instructions << ", \"violations\": [";
    for (size_t i = 0; i < g.violations.size(); ++i) j << (i ? ", " : "") << "\"" << g.violations[i] << "\"";
    j << "], \"counter_names\": \"" << g.counter_names << "\", \"marks\": [";
    for (size_t i = 0; i < g.marks.size(); ++i) {
        j << (i ? ", " : "") << "[";
        for (size_t k = 0; k < g.marks[i].size(); ++k) j << (k ? ", " : "") << g.marks[i][k];
        j << "]";
    }
    j << "]}\n";
}

void drive_instruction(svBit* valid, svBitVecVal* data, int instr_bits) {
    bool show = g.index < g.prog.size() && !(g.stall && chance(g.gap_p));
    g.instr_valid = show;
    *valid = show;
    for (int w = 0; w < (instr_bits + 31) / 32; ++w) data[w] = show ? g.prog[g.index][w] : 0;
}

}  // namespace

// One rising edge. Inputs are the values before the edge (what the DUT samples now); outputs are registered by
// the wrapper and seen by the DUT at the next edge.
extern "C" void jaq_tb_tick(int cmd, int arg, int width, int instr_bits, int n_counters, const char* counter_names,
                            svBit rst,
                            svBit rd_req_valid, int rd_req_tensor, long long rd_req_addr, int rd_req_bits,
                            svBit wr_valid, int wr_tensor, long long wr_addr, int wr_bits,
                            const svBitVecVal* wr_data, svBit instr_ready, svBit done, const svBitVecVal* counters,
                            svBit* o_rd_req_ready, svBit* o_rd_resp_valid, svBitVecVal* o_rd_resp_data,
                            svBit* o_wr_ready, svBit* o_instr_valid, svBitVecVal* o_instr_data,
                            svBit* o_finished) {
    if (cmd == 1) load(arg);
    if (cmd == 2) dump();
    *o_rd_req_ready = 0;
    *o_rd_resp_valid = 0;
    *o_wr_ready = 0;
    *o_instr_valid = 0;
    *o_finished = g.finished;
    for (int w = 0; w < (width + 31) / 32; ++w) o_rd_resp_data[w] = 0;
    for (int w = 0; w < (instr_bits + 31) / 32; ++w) o_instr_data[w] = 0;
    if (!g.armed || rst || g.finished) {
        g.rd_ready = g.wr_ready = g.instr_valid = false;
        return;
    }
    if (g.width == 0) g.width = width;
    if (g.counter_names.empty()) g.counter_names = counter_names;
    const int64_t r = g.cycle;
    // instruction handshake at this edge
    if (g.instr_valid && instr_ready) {
        const uint32_t op = g.prog[g.index][0] & ((1u << g.opcode_bits) - 1);
        if (static_cast<int>(op) == g.mark_opcode) {
            std::vector<uint64_t> m(n_counters);
            for (int c = 0; c < n_counters; ++c)
                m[c] = static_cast<uint64_t>(counters[2 * c]) | static_cast<uint64_t>(counters[2 * c + 1]) << 32;
            g.marks.push_back(std::move(m));
        }
        if (g.first_accept < 0) g.first_accept = r;
        ++g.index;
        ++g.instructions;
    }
    // read request handshake: the response is registered at edge r + L - 1 (+ extra), sampled at r + L
    // (a request that violates the protocol is recorded and answered with zeros, so the DUT does not hang)
    if (g.rd_ready && rd_req_valid) {
        const bool ok = check("read", rd_req_tensor, rd_req_addr, rd_req_bits);
        int extra = g.stall ? std::uniform_int_distribution<int>(0, g.resp_extra_max)(g.rng) : 0;
        int64_t due = r + g.latency - 1 + extra;
        if (due <= g.last_due) due = g.last_due + 1;
        g.last_due = due;
        g.pending.push_back({due, ok ? rd_req_addr : 0, r, ok ? rd_req_bits : 0});
        if (ok) {
            g.rd_beats[rd_req_tensor] += 1;
            g.rd_bits[rd_req_tensor] += rd_req_bits;
        }
    }
    // write handshake (posted)
    if (g.wr_ready && wr_valid && check("write", wr_tensor, wr_addr, wr_bits)) {
        mem_write(wr_addr, wr_bits, wr_data);
        g.wr_beats += 1;
        g.wr_bits += wr_bits;
    }
    // response due now
    if (!g.pending.empty() && g.pending.front().due == r) {
        const Pending p = g.pending.front();
        g.pending.pop_front();
        mem_read(p.addr, p.nbits, o_rd_resp_data, width);
        *o_rd_resp_valid = 1;
        int64_t lat = r + 1 - p.req;
        if (g.min_lat < 0 || lat < g.min_lat) g.min_lat = lat;
        if (lat > g.max_lat) g.max_lat = lat;
    }
    if (done && g.index >= g.prog.size() && g.pending.empty() && g.first_accept >= 0) {
        g.finished = true;
        g.finish_cycle = r;
        *o_finished = 1;
        return;
    }
    g.rd_ready = !g.stall || chance(g.rd_ready_p);
    g.wr_ready = !g.stall || chance(g.wr_ready_p);
    *o_rd_req_ready = g.rd_ready;
    *o_wr_ready = g.wr_ready;
    drive_instruction(o_instr_valid, o_instr_data, instr_bits);
    ++g.cycle;
}
