"""The kernel's Alembic branch (label ``kernel``): its tables, once for every service.

Each service's history (``<package>:migrations``) is read together with this folder
(:func:`upgestao_kernel.migrations.alembic_config`); the service's first own revision
``depends_on`` a revision of this branch, and ``upgrade heads`` applies both branches.
A change to the kernel's tables is a new revision here (``kernel_v3``, revising ``kernel_v2``),
never an edit of a table in ``schema.py`` alone and never a revision in a service.
"""
