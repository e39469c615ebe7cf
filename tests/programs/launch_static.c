/* launch_static.c - built with -static and -static-pie for the launcher's
 * test: tm_tracer_check_program must refuse it. */
int main(void)
{
    return 0;
}
