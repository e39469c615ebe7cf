/* hook_walk.c - the hook's own stack walker: see hook_walk.h.
 *
 * Why by hand: libunwind's unw_backtrace does the same walk, but spends
 * about 7 ns a frame in its per-thread frame cache and the bookkeeping of a
 * general cursor; this walk reads one word of a shared table per frame.
 * libgcc's _Unwind_Backtrace is far slower (a full CFI interpretation per
 * frame).  Only the x86-64 frame shapes that need no more than rsp, rbp and
 * the CFA are walked here; for the others the caller uses libunwind. */
#include "hook_walk.h"

#include "byte_reader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(DLFO_STRUCT_HAS_EH_DBASE)
#define TM_UNW_AVAILABLE 1
#else
#define TM_UNW_AVAILABLE 0
#endif

/* The initial stack pointer of the main thread (ld.so). */
extern void *__libc_stack_end;

/* ---- the rule table ----------------------------------------------------------
 * Direct-mapped by the code address's low bits; each entry is one word,
 * (address >> RULE_BITS) << 32 | rule, written and read atomically, so no
 * reader ever sees half an entry.  0 is empty (no code lies below 2^15). */
#define RULE_BITS 15
#define RULE_SLOTS (1u << RULE_BITS)
#define R_BAD 1u       /* decline: libunwind walks this stack */
#define R_RBP 2u       /* CFA = rbp + off (else rsp + off) */
#define R_LAST 4u      /* the return address is undefined: outermost frame */
#define R_SAVED 8u     /* rbp is saved at CFA + 8 * (int8_t)(rule >> 4) */
#define R_OFF_SHIFT 12 /* CFA offset, 20 bits */
#define R_OFF_LIMIT (1u << 20)
#define STACK_LIMIT (256ull << 20) /* a walk spanning more declines */

static uint64_t *g_rules;
static uint64_t g_done, g_declined, g_reused; /* statistics only: relaxed, racy */
static unsigned g_forgets;                    /* tm_unwind_forget() calls (atomic) */
#if TM_UNW_AVAILABLE
static int (*g_find)(void *, struct dl_find_object *);
#endif

int tm_unwind_init(void)
{
#if TM_UNW_AVAILABLE
    void *t = mmap(NULL, RULE_SLOTS * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return 0;
    /* Through dlsym, so that the hook still loads on a glibc without it. */
    void *f = dlsym(RTLD_DEFAULT, "_dl_find_object");
    if (!f) {
        munmap(t, RULE_SLOTS * sizeof(uint64_t));
        return 0;
    }
    g_find = (int (*)(void *, struct dl_find_object *))f;
    __atomic_store_n(&g_rules, (uint64_t *)t, __ATOMIC_RELEASE);
    return 1;
#else
    return 0;
#endif
}

void tm_unwind_forget(void)
{
    uint64_t *t = __atomic_load_n(&g_rules, __ATOMIC_ACQUIRE);
    if (!t)
        return;
    __atomic_add_fetch(&g_forgets, 1, __ATOMIC_ACQ_REL);
    for (unsigned i = 0; i < RULE_SLOTS; i++)
        __atomic_store_n(&t[i], 0, __ATOMIC_RELAXED);
}

void tm_unwind_counts(uint64_t *done, uint64_t *declined, uint64_t *reused)
{
    *done = __atomic_load_n(&g_done, __ATOMIC_RELAXED);
    *declined = __atomic_load_n(&g_declined, __ATOMIC_RELAXED);
    *reused = __atomic_load_n(&g_reused, __ATOMIC_RELAXED);
}

#if TM_UNW_AVAILABLE
/* ---- reading .eh_frame -------------------------------------------------------
 * The module is mapped and its tables are what libgcc trusts to throw
 * exceptions through; the reader still stays inside each CIE's and FDE's
 * own length (byte_reader.h). */

/* A pointer in encoding enc (DW_EH_PE_*); datarel is the base of
 * DW_EH_PE_datarel.  Indirect and text/function-relative encodings are
 * refused: .eh_frame's FDEs do not use them on x86-64. */
static uint64_t rd_ptr(tm_rd *r, uint8_t enc, uint64_t datarel)
{
    uint64_t here = (uint64_t)(uintptr_t)r->p, v;
    switch (enc & 0x0f) {
    case 0x00:
        v = tm_rd_fixed(r, 8);
        break;
    case 0x01:
        v = tm_rd_uleb(r);
        break;
    case 0x02:
        v = tm_rd_fixed(r, 2);
        break;
    case 0x03:
        v = tm_rd_fixed(r, 4);
        break;
    case 0x04:
        v = tm_rd_fixed(r, 8);
        break;
    case 0x09:
        v = (uint64_t)tm_rd_sleb(r);
        break;
    case 0x0a:
        v = (uint64_t)(int64_t)(int16_t)tm_rd_fixed(r, 2);
        break;
    case 0x0b:
        v = (uint64_t)(int64_t)(int32_t)tm_rd_fixed(r, 4);
        break;
    case 0x0c:
        v = tm_rd_fixed(r, 8);
        break;
    default:
        r->bad = 1;
        return 0;
    }
    switch (enc & 0x70) {
    case 0x00:
        break;
    case 0x10:
        v += here;
        break;
    case 0x30:
        v += datarel;
        break;
    default:
        r->bad = 1;
        return 0;
    }
    if (enc & 0x80)
        r->bad = 1;
    return v;
}

/* The FDE covering pc, from the binary-search table of .eh_frame_hdr. */
static const uint8_t *fde_lookup(const uint8_t *hdr, uint64_t pc)
{
    if (!hdr || hdr[0] != 1 || hdr[3] != 0x3b) /* table: datarel sdata4 */
        return NULL;
    uint64_t base = (uint64_t)(uintptr_t)hdr;
    tm_rd r = {hdr + 4, hdr + 4 + 32, 0};
    (void)rd_ptr(&r, hdr[1], base); /* eh_frame_ptr */
    if (hdr[2] == 0xff)
        return NULL;
    uint64_t n = rd_ptr(&r, hdr[2], base);
    if (r.bad || n == 0 || n > (1u << 28))
        return NULL;
    const uint8_t *tab = r.p;
    uint64_t lo = 0, hi = n; /* the last entry whose start <= pc */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        int32_t s;
        memcpy(&s, tab + 8 * mid, 4);
        if (base + (uint64_t)(int64_t)s <= pc)
            lo = mid;
        else
            hi = mid;
    }
    int32_t s, f;
    memcpy(&s, tab + 8 * lo, 4);
    memcpy(&f, tab + 8 * lo + 4, 4);
    if (base + (uint64_t)(int64_t)s > pc)
        return NULL;
    return (const uint8_t *)(uintptr_t)(base + (uint64_t)(int64_t)f);
}

/* One row of the CFI table, for the registers the walk needs. */
enum { H_SAME, H_OFF, H_UNDEF, H_OTHER };
enum { S_RBP, S_RSP, S_RA, S_N };
struct row {
    uint64_t cfa_reg;
    int64_t cfa_off;
    int cfa_expr;
    int how[S_N];
    int64_t off[S_N];
};

struct cie {
    int64_t code_align, data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int has_z;
    const uint8_t *ins, *end;
};

static int reg_slot(const struct cie *c, uint64_t reg)
{
    if (reg == 6)
        return S_RBP;
    if (reg == 7)
        return S_RSP;
    if (reg == c->ra_reg)
        return S_RA;
    return -1;
}

static void set_rule(struct row *w, int slot, int how, int64_t off)
{
    if (slot >= 0) {
        w->how[slot] = how;
        w->off[slot] = off;
    }
}

static void restore_rule(struct row *w, const struct row *init, int slot)
{
    if (slot >= 0 && slot < S_N) {
        w->how[slot] = init->how[slot];
        w->off[slot] = init->off[slot];
    }
}

static int read_cie(const uint8_t *p, struct cie *c)
{
    uint32_t len;
    memcpy(&len, p, 4);
    if (len == 0 || len == 0xffffffffu)
        return -1;
    tm_rd r = {p + 4, p + 4 + len, 0};
    if (tm_rd_fixed(&r, 4) != 0) /* a CIE's id */
        return -1;
    uint64_t version = tm_rd_fixed(&r, 1);
    if (version != 1 && version != 3)
        return -1;
    const char *aug = (const char *)r.p;
    size_t auglen = strnlen(aug, (size_t)(r.end - r.p));
    if (auglen == (size_t)(r.end - r.p))
        return -1;
    r.p += auglen + 1;
    c->code_align = (int64_t)tm_rd_uleb(&r);
    c->data_align = tm_rd_sleb(&r);
    c->ra_reg = version == 1 ? tm_rd_fixed(&r, 1) : tm_rd_uleb(&r);
    c->fde_enc = 0; /* absptr */
    c->has_z = aug[0] == 'z';
    if (auglen && !c->has_z)
        return -1;
    if (c->has_z) {
        uint64_t n = tm_rd_uleb(&r);
        if (r.bad || n > (uint64_t)(r.end - r.p))
            return -1;
        const uint8_t *data_end = r.p + n;
        for (size_t i = 1; i < auglen; i++) {
            if (aug[i] == 'R') {
                c->fde_enc = (uint8_t)tm_rd_fixed(&r, 1);
            } else if (aug[i] == 'P') {
                uint8_t enc = (uint8_t)tm_rd_fixed(&r, 1);
                (void)rd_ptr(&r, enc & 0x7f, 0); /* the personality: skipped */
                r.bad = 0;
            } else if (aug[i] == 'L') {
                (void)tm_rd_fixed(&r, 1);
            } else if (aug[i] == 'S') {
                return -1; /* a signal frame: libunwind knows its layout */
            } else {
                break; /* unknown: 'z' says where its data ends */
            }
        }
        r.p = data_end;
    }
    if (r.bad || c->code_align <= 0)
        return -1;
    c->ins = r.p;
    c->end = r.end;
    return 0;
}

/* Runs CFI instructions from r until the row for pc is complete (the
 * location passes pc) or they end.  init is the CIE's row (NULL while
 * running the CIE's own instructions). */
static int run_cfi(tm_rd *r, const struct cie *c, uint64_t *loc, uint64_t pc, struct row *w,
                   const struct row *init)
{
    struct row saved[8];
    int nsaved = 0;
    while (r->p < r->end && !r->bad) {
        uint8_t op = *r->p++;
        uint64_t adv = 0, reg;
        int64_t off;
        switch (op & 0xc0) {
        case 0x40:
            adv = op & 0x3f;
            break;
        case 0x80:
            off = (int64_t)tm_rd_uleb(r) * c->data_align;
            set_rule(w, reg_slot(c, op & 0x3f), H_OFF, off);
            break;
        case 0xc0:
            if (!init)
                return -1;
            restore_rule(w, init, reg_slot(c, op & 0x3f));
            break;
        default:
            switch (op) {
            case 0x00: /* nop */
                break;
            case 0x01: /* set_loc */
                reg = rd_ptr(r, c->fde_enc, 0);
                if (reg > pc)
                    return 0;
                *loc = reg;
                break;
            case 0x02:
                adv = tm_rd_fixed(r, 1);
                break;
            case 0x03:
                adv = tm_rd_fixed(r, 2);
                break;
            case 0x04:
                adv = tm_rd_fixed(r, 4);
                break;
            case 0x05: /* offset_extended */
                reg = tm_rd_uleb(r);
                set_rule(w, reg_slot(c, reg), H_OFF, (int64_t)tm_rd_uleb(r) * c->data_align);
                break;
            case 0x06: /* restore_extended */
                reg = tm_rd_uleb(r);
                if (!init)
                    return -1;
                restore_rule(w, init, reg_slot(c, reg));
                break;
            case 0x07:
                set_rule(w, reg_slot(c, tm_rd_uleb(r)), H_UNDEF, 0);
                break;
            case 0x08:
                set_rule(w, reg_slot(c, tm_rd_uleb(r)), H_SAME, 0);
                break;
            case 0x09: /* register */
                reg = tm_rd_uleb(r);
                (void)tm_rd_uleb(r);
                set_rule(w, reg_slot(c, reg), H_OTHER, 0);
                break;
            case 0x0a: /* remember_state */
                if (nsaved == 8)
                    return -1;
                saved[nsaved++] = *w;
                break;
            case 0x0b: /* restore_state */
                if (nsaved == 0)
                    return -1;
                *w = saved[--nsaved];
                break;
            case 0x0c: /* def_cfa */
                w->cfa_reg = tm_rd_uleb(r);
                w->cfa_off = (int64_t)tm_rd_uleb(r);
                w->cfa_expr = 0;
                break;
            case 0x0d:
                w->cfa_reg = tm_rd_uleb(r);
                break;
            case 0x0e:
                w->cfa_off = (int64_t)tm_rd_uleb(r);
                break;
            case 0x0f: /* def_cfa_expression */
                off = (int64_t)tm_rd_uleb(r);
                if (off < 0 || off > r->end - r->p)
                    return -1;
                r->p += off;
                w->cfa_expr = 1;
                break;
            case 0x10: /* expression */
            case 0x16: /* val_expression */
                reg = tm_rd_uleb(r);
                off = (int64_t)tm_rd_uleb(r);
                if (off < 0 || off > r->end - r->p)
                    return -1;
                r->p += off;
                set_rule(w, reg_slot(c, reg), H_OTHER, 0);
                break;
            case 0x11: /* offset_extended_sf */
                reg = tm_rd_uleb(r);
                set_rule(w, reg_slot(c, reg), H_OFF, tm_rd_sleb(r) * c->data_align);
                break;
            case 0x12: /* def_cfa_sf */
                w->cfa_reg = tm_rd_uleb(r);
                w->cfa_off = tm_rd_sleb(r) * c->data_align;
                w->cfa_expr = 0;
                break;
            case 0x13:
                w->cfa_off = tm_rd_sleb(r) * c->data_align;
                break;
            case 0x14: /* val_offset */
                reg = tm_rd_uleb(r);
                (void)tm_rd_uleb(r);
                set_rule(w, reg_slot(c, reg), H_OTHER, 0);
                break;
            case 0x15: /* val_offset_sf */
                reg = tm_rd_uleb(r);
                (void)tm_rd_sleb(r);
                set_rule(w, reg_slot(c, reg), H_OTHER, 0);
                break;
            case 0x2e: /* GNU_args_size */
                (void)tm_rd_uleb(r);
                break;
            case 0x2f: /* GNU_negative_offset_extended */
                reg = tm_rd_uleb(r);
                set_rule(w, reg_slot(c, reg), H_OFF, -(int64_t)tm_rd_uleb(r) * c->data_align);
                break;
            default:
                return -1;
            }
        }
        if (adv) {
            *loc += adv * (uint64_t)c->code_align;
            if (*loc > pc)
                return 0;
        }
    }
    return r->bad ? -1 : 0;
}

/* The rule for the code address pc, from its module's unwind table. */
static uint32_t rule_read(uint64_t pc)
{
    struct dl_find_object fo;
    if (g_find((void *)(uintptr_t)pc, &fo) != 0 || !fo.dlfo_eh_frame)
        return R_BAD;
    const uint8_t *fde = fde_lookup(fo.dlfo_eh_frame, pc);
    if (!fde)
        return R_BAD;
    uint32_t len, id;
    memcpy(&len, fde, 4);
    memcpy(&id, fde + 4, 4);
    if (len == 0 || len == 0xffffffffu || id == 0)
        return R_BAD;
    struct cie c;
    if (read_cie(fde + 4 - id, &c) != 0)
        return R_BAD;
    tm_rd r = {fde + 8, fde + 4 + len, 0};
    uint64_t begin = rd_ptr(&r, c.fde_enc, 0);
    uint64_t range = rd_ptr(&r, c.fde_enc & 0x0f, 0);
    if (c.has_z) {
        uint64_t n = tm_rd_uleb(&r);
        if (n > (uint64_t)(r.end - r.p))
            return R_BAD;
        r.p += n;
    }
    if (r.bad || pc < begin || pc - begin >= range)
        return R_BAD;
    struct row w = {.cfa_reg = 7, .cfa_off = 8};
    tm_rd ci = {c.ins, c.end, 0};
    uint64_t loc = 0;
    if (run_cfi(&ci, &c, &loc, UINT64_MAX, &w, NULL) != 0)
        return R_BAD;
    struct row init = w;
    loc = begin;
    if (run_cfi(&r, &c, &loc, pc, &w, &init) != 0)
        return R_BAD;

    if (w.how[S_RA] == H_UNDEF)
        return R_LAST;
    if (w.how[S_RA] != H_OFF || w.off[S_RA] != -8 || w.cfa_expr ||
        (w.cfa_reg != 6 && w.cfa_reg != 7) || w.cfa_off < 0 || w.cfa_off >= R_OFF_LIMIT ||
        (w.how[S_RSP] != H_SAME))
        return R_BAD;
    uint32_t rule = (uint32_t)w.cfa_off << R_OFF_SHIFT | (w.cfa_reg == 6 ? R_RBP : 0);
    if (w.how[S_RBP] == H_OFF) {
        int64_t k = w.off[S_RBP] / 8;
        if (w.off[S_RBP] % 8 || k < -128 || k > 127)
            return R_BAD;
        rule |= R_SAVED | (uint32_t)(uint8_t)(int8_t)k << 4;
    } else if (w.how[S_RBP] != H_SAME) {
        return R_BAD;
    }
    return rule;
}

static __attribute__((noinline)) uint32_t rule_miss(uint64_t *t, uint64_t pc)
{
    unsigned gen = __atomic_load_n(&g_forgets, __ATOMIC_ACQUIRE);
    uint32_t rule = rule_read(pc);
    /* Not kept when a module went away meanwhile (pc's code may be gone),
     * nor for code above 2^47 (5-level paging), whose tag would not fit. */
    if (__atomic_load_n(&g_forgets, __ATOMIC_ACQUIRE) == gen && !(pc >> 47))
        __atomic_store_n(&t[pc & (RULE_SLOTS - 1)], (pc >> RULE_BITS) << 32 | rule,
                         __ATOMIC_RELAXED);
    return rule;
}

static inline uint32_t rule_for(uint64_t *t, uint64_t pc)
{
    uint64_t e = __atomic_load_n(&t[pc & (RULE_SLOTS - 1)], __ATOMIC_RELAXED);
    if (__builtin_expect(e >> 32 == pc >> RULE_BITS, 1))
        return (uint32_t)e;
    return rule_miss(t, pc);
}

/* The highest address the walk may read below: the thread's descriptor
 * sits above its stack (glibc puts it at the top of every thread's stack
 * block, the caller's own stacks included); the main thread's stack ends at
 * __libc_stack_end.  0 when sp is in neither (a stack of the program's own
 * making): then the walk declines. */
static inline uint64_t stack_top(uint64_t sp)
{
    uint64_t self = (uint64_t)pthread_self();
    if (self > sp && self - sp < STACK_LIMIT)
        return self;
    uint64_t end = (uint64_t)(uintptr_t)__libc_stack_end;
    if (end > sp && end - sp < STACK_LIMIT)
        return end;
    return 0;
}

/* ---- the memo of the last walk --------------------------------------------
 * Consecutive allocations mostly share the outer part of their stacks.  A
 * thread keeps the frames of its last walk, and when a new walk reaches a
 * frame with the same state (entry, rsp, and rbp when the rest of the walk
 * uses it) as a remembered one, the rest of the walk is a function of that
 * state, of the rules of the remembered code addresses and of the stack
 * words the walk read: each return-address slot, each saved-rbp slot and
 * the slot that ended it.  When all of those still hold the values read
 * then, the remembered frames are the answer; otherwise the walk goes on.
 * rbp is "live" at a frame when the walk from there reads it before
 * reloading it from a slot: compiled code keeps anything in rbp, so a dead
 * rbp must not stop the match.
 *
 * The frames sit at the end of the arrays, the outermost last: a walk that
 * joins the remembered one rewrites only its own inner frames, and the
 * entries it takes over are one contiguous copy. */
#define MEMO_FRAMES 64
#define MEMO_TRIES 2 /* verifications per walk */
enum { END_LAST, END_LOW, END_CAP };
struct memo_frame {
    uint64_t sp, bp;
    uint64_t ra_at; /* where the walk read the caller's return address */
    uint64_t bp_at; /* where it read the caller's rbp, or 0 */
    uint32_t rule;  /* the rule it applied here (0: none, the outermost frame) */
    uint32_t live;  /* bp is live here */
};
struct walk_memo {
    unsigned nf;  /* frames kept, in [MEMO_FRAMES - nf, MEMO_FRAMES); 0: none */
    unsigned end; /* END_*: how the walk ended at the outermost frame */
    unsigned gen; /* g_forgets then */
    unsigned cap; /* the cap of the walk the frames came from */
    uint64_t top;
    uint64_t low_at, low_val; /* END_LOW: the slot holding a return address below 0x4000 */
    uint64_t v[MEMO_FRAMES];  /* each frame's entry in buf */
    struct memo_frame f[MEMO_FRAMES];
};
static __thread struct walk_memo t_memo __attribute__((tls_model("initial-exec")));

static inline uint32_t bp_live(uint32_t rule, uint32_t outer_live)
{
    return (rule & R_RBP) || (!(rule & R_SAVED) && outer_live);
}

/* Stores frames pre[0..k) (this walk's, innermost first) in front of the
 * memo's frames from p on (p == MEMO_FRAMES: none kept). */
static void memo_store(struct walk_memo *m, const struct memo_frame *pre, const uint64_t *buf,
                       unsigned k, unsigned p)
{
    if (k > p) {
        m->nf = 0; /* deeper than the memo holds */
        return;
    }
    uint32_t live = p < MEMO_FRAMES ? m->f[p].live : 0;
    for (unsigned i = k; i-- > 0;) {
        struct memo_frame *f = &m->f[p - k + i];
        *f = pre[i];
        live = bp_live(f->rule, live);
        f->live = live;
    }
    memcpy(&m->v[p - k], buf, 8 * (size_t)k);
    m->nf = MEMO_FRAMES - (p - k);
}

/* The new walk's frame k has the state of the memo's frame at p: checks the
 * words the rest of the walk would read, fills buf[k..) from the memo (all
 * of buf, *same set, when it is the last walk's whole answer) and takes
 * this walk's frames into the memo. */
static unsigned memo_reuse(struct walk_memo *m, uint64_t *buf, unsigned cap,
                           const struct memo_frame *pre, unsigned k, unsigned p, int *same)
{
    unsigned nf = k + (MEMO_FRAMES - p);
    if (m->end == END_CAP && nf < cap)
        return 0; /* that walk stopped short of where this one must go */
    unsigned out = nf < cap ? nf : cap;
    /* Checks and copies in one pass (buf[k..out) may be shorter than the
     * frames checked: the cap).  buf beyond frame 0 is left as it is when
     * it is the last walk's whole answer. */
    int fill = !(k == 0 && nf == m->nf && cap == m->cap && same);
    const struct memo_frame *f = &m->f[p], *last = &m->f[MEMO_FRAMES - 1];
    const uint64_t *v = &m->v[p];
    uint64_t *o = buf + k, *o_end = buf + out;
    for (; f < last; f++, v++) {
        if (fill && o < o_end)
            *o++ = v[0];
        if (*(const uint64_t *)(uintptr_t)f->ra_at != v[1])
            return 0;
        if (f->bp_at && *(const uint64_t *)(uintptr_t)f->bp_at != f[1].bp)
            return 0;
    }
    if (fill && o < o_end)
        *o = v[0];
    if (m->end == END_LOW && *(const uint64_t *)(uintptr_t)m->low_at != m->low_val)
        return 0;
    if (!fill) {
        *same = 1;
        return out;
    }
    memo_store(m, pre, buf, k, p);
    m->cap = cap;
    return out;
}
#endif

unsigned tm_unwind_walk(uint64_t *buf, unsigned cap, const struct tm_unw_start *s, int *same)
{
#if TM_UNW_AVAILABLE
    uint64_t *t = __atomic_load_n(&g_rules, __ATOMIC_ACQUIRE);
    uint64_t sp = s->sp, bp = s->bp;
    uint64_t pc = s->ip; /* the first frame's rule is looked up at its own address */
    uint64_t v = pc;
    uint64_t top = t && cap ? stack_top(sp) : 0;
    if (same)
        *same = 0;
    if (!top)
        goto decline;
    struct walk_memo *m = &t_memo;
    unsigned gen = __atomic_load_n(&g_forgets, __ATOMIC_ACQUIRE);
    /* p: the memo's innermost frame not below this walk's frame */
    unsigned p = m->nf && m->gen == gen && m->top == top ? MEMO_FRAMES - m->nf : MEMO_FRAMES;
    int tries = MEMO_TRIES;
    struct memo_frame pre[MEMO_FRAMES];
    unsigned n = 0, end;
    uint64_t low_at = 0;
    for (;; n++) {
        /* Frame n: its entry v, the address pc its rule is looked up by. */
        buf[n] = v;
        while (p < MEMO_FRAMES && m->f[p].sp < sp)
            p++;
        if (p < MEMO_FRAMES && m->f[p].sp == sp && m->v[p] == v &&
            (!m->f[p].live || m->f[p].bp == bp) && (p == MEMO_FRAMES - m->nf) == (n == 0) &&
            tries-- > 0) {
            unsigned r = memo_reuse(m, buf, cap, pre, n, p, same);
            if (r) {
                __atomic_store_n(&g_done, g_done + 1, __ATOMIC_RELAXED);
                __atomic_store_n(&g_reused, g_reused + 1, __ATOMIC_RELAXED);
                return r;
            }
        }
        if (n < MEMO_FRAMES)
            pre[n] = (struct memo_frame){sp, bp, 0, 0, 0, 0};
        if (n + 1 >= cap) {
            end = END_CAP;
            break;
        }
        uint32_t rule = rule_for(t, pc);
        if (__builtin_expect(rule & (R_BAD | R_LAST), 0)) {
            if (rule & R_BAD)
                goto decline;
            end = END_LAST;
            break;
        }
        uint64_t cfa = ((rule & R_RBP) ? bp : sp) + (rule >> R_OFF_SHIFT);
        if (cfa < sp + 8 || cfa > top)
            goto decline;
        uint64_t ra = *(const uint64_t *)(uintptr_t)(cfa - 8);
        if (n < MEMO_FRAMES) {
            pre[n].rule = rule;
            pre[n].ra_at = cfa - 8;
        }
        if (rule & R_SAVED) {
            uint64_t at = cfa + 8 * (int64_t)(int8_t)(rule >> 4);
            if (at < sp || at + 8 > top)
                goto decline;
            bp = *(const uint64_t *)(uintptr_t)at;
            if (n < MEMO_FRAMES)
                pre[n].bp_at = at;
        }
        sp = cfa;
        if (ra < 0x4000) {
            end = END_LOW;
            low_at = cfa - 8;
            break;
        }
        v = ra;
        pc = ra - 1;
    }
    n++; /* entries in buf */
    memo_store(m, pre, buf, n, MEMO_FRAMES);
    m->end = end;
    m->gen = gen;
    m->top = top;
    m->cap = cap;
    m->low_at = low_at;
    m->low_val = low_at ? *(const uint64_t *)(uintptr_t)low_at : 0;
    __atomic_store_n(&g_done, g_done + 1, __ATOMIC_RELAXED);
    return n;
decline:
    __atomic_store_n(&g_declined, g_declined + 1, __ATOMIC_RELAXED);
#else
    (void)buf;
    (void)cap;
    (void)s;
    if (same)
        *same = 0;
#endif
    return 0;
}
