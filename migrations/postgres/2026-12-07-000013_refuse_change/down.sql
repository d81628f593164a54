DROP FUNCTION refuse_change();
