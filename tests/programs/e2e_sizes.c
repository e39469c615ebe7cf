/* e2e_sizes.c - live blocks whose totals exercise every branch of
 * tracemalloc's size format (_format_size), including rounding ties:
 * the driver checks the text report's "size=..., count=..., average=..."
 * against Python's own rules.  One site per line, all leaked.  (Note that
 * the format never shows "1.5 KiB": below 10 KiB it counts bytes.) */
#include "e2e_common.h"

static void *keep[4096];
static int k;

static void leak(void *p)
{
    keep[k++ % 4096] = p;
}

int main(void)
{
    leak(malloc(95)); /* @site:b95 */
    for (int i = 0; i < 2; i++)
        leak(malloc(7936)); /* @site:k15_5 */
    for (int i = 0; i < 3002; i++)
        leak(malloc(95));   /* @site:k279 */
    leak(malloc(12897485)); /* @site:m12_3 */
    for (int i = 0; i < 2; i++)
        leak(malloc(94 + i)); /* @site:avg_tie */
    leak(malloc(10239));      /* @site:b10239 */
    leak(malloc(10240));      /* @site:k10_0 */
    leak(malloc(102349));     /* @site:k100_0 */
    leak(malloc(102400));     /* @site:k100 */
    leak(malloc(285184));     /* @site:k278_tie */
    leak(malloc(10496));      /* @site:k10_2_tie */
    leak(malloc(10485759));   /* @site:k10240 */
    leak(malloc(10485760));   /* @site:m10_0 */
    e2e_say(1, "sizes: done\n");
    return 0;
}
