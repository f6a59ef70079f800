/* lowrank_kernel_avx512.h: the AVX-512 instantiation of
 * lowrank_kernel_impl.h, included by lowrank_kernel.c once per variant
 * with LK_SFX (the functions' suffix) and LK_NU (score vectors in flight)
 * defined; the impl undefines every parameter after use. */
#define LK_ATTR __attribute__((target("avx512f,fma")))
#define LK_W 16
#define LK_G 8 /* more pointers than registers at 16 */
#define VF __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VMAX(a, b) _mm512_max_ps((a), (b))
#define VSCALE2K(p, k) _mm512_scalef_ps((p), (k)) /* p * 2^floor(k), one rounding */
#include "attn/lowrank_kernel_impl.h"
