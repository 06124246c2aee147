// Batch assembly on the device: one thread per output element of a list of
// boxes (see rust/src/device_plan.rs, whose CopyBox and SourceLayout mirror
// the structs below). A copy box reads elements of one decoded chunk in a
// staging buffer -- undoing a blosc byte shuffle on the fly -- casts them and
// writes them into the batch; a fill box writes a constant. Conversions are
// written out by hand (no CUDA headers): f16 -> f32 is exact, f32 -> bf16
// rounds to nearest even, 32-bit integers -> bf16 go through f32 rounded
// to odd so that the result equals rounding the integer once.

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define MAX_RANK 8

enum { SRC_U8 = 0, SRC_I8 = 1, SRC_U16 = 2, SRC_I16 = 3, SRC_U32 = 4, SRC_I32 = 5, SRC_F16 = 6, SRC_F32 = 7 };
enum { BOX_COPY = 0, BOX_FILL = 1 };

struct SourceLayout {
    u64 offset;     // byte offset of the chunk in the staging buffer
    u64 len;        // decoded bytes of the chunk
    u32 typesize;   // blosc shuffle type size; 0 or 1: not shuffled
    u32 blocksize;  // blosc block size in bytes
};

struct CopyBox {
    u64 first;      // index of the box's first element among all boxes
    u64 src_base;   // first source element
    u64 dst_base;   // first batch element
    u64 counts[MAX_RANK];
    u64 src_steps[MAX_RANK];
    u64 dst_steps[MAX_RANK];
    u32 source;
    u32 kind;
    u32 src_dtype;
    u32 fill_bits;  // fill value in the output dtype (bf16 in the low half)
};

__device__ static u8 load_byte(const u8* chunk, const SourceLayout& s, u64 p) {
    if (s.typesize <= 1) return chunk[p];
    u64 start = p - p % s.blocksize;
    u64 bsize = s.len - start;
    if (bsize > s.blocksize) bsize = s.blocksize;
    u64 q = p - start;
    u64 per_stream = bsize / s.typesize;
    if (q >= per_stream * s.typesize) return chunk[p];  // leftover bytes are not shuffled
    return chunk[start + (q % s.typesize) * per_stream + q / s.typesize];
}

__device__ static u32 load_bits(const u8* chunk, const SourceLayout& s, u64 element, u32 size) {
    u32 v = 0;
    for (u32 j = 0; j < size; ++j) v |= (u32)load_byte(chunk, s, element * size + j) << (8 * j);
    return v;
}

__device__ static u32 f16_to_f32_bits(u32 h) {
    u32 sign = (h & 0x8000u) << 16;
    u32 exp = (h >> 10) & 0x1fu;
    u32 man = h & 0x3ffu;
    if (exp == 0x1fu) return man == 0 ? (sign | 0x7f800000u) : (sign | 0x7fc00000u | (man << 13));
    if (exp == 0) return sign | __float_as_uint((float)man * 5.9604644775390625e-8f);  // man * 2^-24, exact
    return sign | ((exp + 112u) << 23) | (man << 13);
}

__device__ static u32 f32_bits_to_bf16(u32 x) {
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;
    if ((x & 0x8000u) != 0 && (x & 0x17fffu) != 0) return (x >> 16) + 1;
    return x >> 16;
}

// Rounds an integer to f32 toward zero and sets the lowest bit when inexact.
__device__ static u32 int_to_f32_bits_round_to_odd(double d) {
    float nearest = (float)d;
    if ((double)nearest == d) return __float_as_uint(nearest);
    u32 bits = __float_as_uint(nearest);
    double an = nearest < 0.0f ? -(double)nearest : (double)nearest;
    double ad = d < 0.0 ? -d : d;
    if (an > ad) bits -= 1;
    return bits | 1u;
}

__device__ static u32 convert(u32 v, u32 dtype, int out_bf16) {
    float f;
    switch (dtype) {
        case SRC_U8: f = (float)(v & 0xffu); break;
        case SRC_I8: f = (float)(signed char)(v & 0xffu); break;
        case SRC_U16: f = (float)(v & 0xffffu); break;
        case SRC_I16: f = (float)(short)(v & 0xffffu); break;
        case SRC_U32:
            if (out_bf16) return f32_bits_to_bf16(int_to_f32_bits_round_to_odd((double)v));
            f = (float)v;
            break;
        case SRC_I32:
            if (out_bf16) return f32_bits_to_bf16(int_to_f32_bits_round_to_odd((double)(int)v));
            f = (float)(int)v;
            break;
        case SRC_F16: {
            u32 bits = f16_to_f32_bits(v & 0xffffu);
            return out_bf16 ? f32_bits_to_bf16(bits) : bits;
        }
        default:  // SRC_F32: bits unchanged
            return out_bf16 ? f32_bits_to_bf16(v) : v;
    }
    u32 bits = __float_as_uint(f);
    return out_bf16 ? f32_bits_to_bf16(bits) : bits;
}

__device__ static u32 dtype_size(u32 dtype) {
    switch (dtype) {
        case SRC_U8: case SRC_I8: return 1;
        case SRC_U16: case SRC_I16: case SRC_F16: return 2;
        default: return 4;
    }
}

extern "C" __global__ void tessera_assemble(
    const u8* staging, const SourceLayout* sources, const CopyBox* boxes, u32 nboxes,
    u64 total, void* out, int out_bf16) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 w = (u64)blockIdx.x * blockDim.x + threadIdx.x; w < total; w += stride) {
        u32 lo = 0, hi = nboxes;
        while (hi - lo > 1) {
            u32 mid = lo + (hi - lo) / 2;
            if (boxes[mid].first <= w) lo = mid; else hi = mid;
        }
        const CopyBox& b = boxes[lo];
        u64 r = w - b.first, src = b.src_base, dst = b.dst_base;
        for (int d = MAX_RANK - 1; d >= 0; --d) {
            u64 c = b.counts[d], i = r % c;
            r /= c;
            src += i * b.src_steps[d];
            dst += i * b.dst_steps[d];
        }
        u32 bits = b.fill_bits;
        if (b.kind == BOX_COPY) {
            const SourceLayout& s = sources[b.source];
            bits = convert(load_bits(staging + s.offset, s, src, dtype_size(b.src_dtype)), b.src_dtype, out_bf16);
        }
        if (out_bf16) ((u16*)out)[dst] = (u16)bits;
        else ((u32*)out)[dst] = bits;
    }
}

// A copy of `len` bytes within the arena (Span in rust/src/device_batch.rs).
struct Span {
    u64 src;
    u64 dst;
    u64 len;
};

// Copies spans within the arena, one block per span: stored blosc streams
// and uncompressed chunks to their decoded place, and zstd frames to the
// aligned slots nvCOMP reads. Sources and destinations never overlap.
extern "C" __global__ void tessera_copy_spans(u8* arena, const Span* spans, u32 nspans) {
    for (u32 k = blockIdx.x; k < nspans; k += gridDim.x) {
        const Span s = spans[k];
        for (u64 i = threadIdx.x; i < s.len; i += blockDim.x) arena[s.dst + i] = arena[s.src + i];
    }
}
