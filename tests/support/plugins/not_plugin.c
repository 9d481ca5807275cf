/* not_plugin.c: a loader-test shared object without the ik_plugin_entry symbol. */
__attribute__((visibility("default"))) int intake_not_a_plugin(void);

int intake_not_a_plugin(void)
{
    return 42;
}
