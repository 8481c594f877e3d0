"""Column lineage derived from SQL: values, reference lookups, and every SQL-built declaration."""

from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.platform.sql_lineage import derive_column_lineage

SCHEMA = {
    "silver": {
        "patients": {"research_key": "VARCHAR", "birth_date": "DATE", "sex": "VARCHAR"},
        "conditions": {"research_key": "VARCHAR", "onset_date": "DATE", "code": "VARCHAR"},
    }
}


def test_values_flow_through_ctes_and_expressions_but_filters_do_not():
    sql = """
    WITH first AS (
        SELECT research_key, min(onset_date) AS index_date FROM silver.conditions
        WHERE code = 'C34' GROUP BY 1
    )
    SELECT p.research_key, date_diff('year', p.birth_date, f.index_date) AS age,
           TRUE AS has_clinical, (SELECT count(*) FROM silver.conditions) AS n
    FROM silver.patients p JOIN first f USING (research_key)
    """
    lineage = derive_column_lineage(sql, ["research_key", "age", "has_clinical", "n"], SCHEMA)
    assert lineage["age"] == (
        ("silver.conditions", "onset_date"),
        ("silver.patients", "birth_date"),
    )
    assert lineage["research_key"] == (("silver.patients", "research_key"),)
    assert "has_clinical" not in lineage and "n" not in lineage  # constants and counts


def test_a_value_looked_up_in_a_reference_list_derives_from_the_join_keys():
    sql = """
    WITH histology(code, label) AS (VALUES ('C34', 'nsclc'), ('C33', 'other'))
    SELECT c.research_key, h.label AS histology
    FROM silver.conditions c LEFT JOIN histology h ON h.code = c.code
    """
    lineage = derive_column_lineage(sql, ["histology"], SCHEMA)
    assert lineage["histology"] == (("silver.conditions", "code"),)


def test_every_sql_built_declaration_derives_lineage_onto_declared_columns():
    built = [t for t in catalog.ALL_TABLES if t.build_sql]
    assert len(built) >= 12
    for table in built:
        lineage = catalog.column_lineage(table)
        assert set(lineage) <= set(table.column_names), table.fqn
        for sources in lineage.values():
            for fqn, column in sources:
                assert column in catalog.table(fqn).column_names, (table.fqn, fqn, column)
        # Every value column but constants and counts comes from somewhere.
        assert len(lineage) >= len(table.column_names) - 3, table.fqn


def test_the_lineage_of_a_feature_is_the_sql_s_not_a_hand_written_copy():
    from multimodal_assets.lib import clinical

    lineage = catalog.column_lineage(clinical.CLINICAL_FEATURES)
    assert set(lineage["age_at_index"]) == {
        ("silver.patients", "birth_date"),
        ("silver.conditions", "onset_date"),
    }
    assert ("silver.conditions", "snomed_code") in lineage["histology"]  # a lookup's key
    assert clinical.CLINICAL_FEATURES.lineage == {}
