"""One ModelViewSet per collection, scoped to the tenant of the request's Api-Key."""

from typing import Any

from django.db.models import Model, ProtectedError, QuerySet
from rest_framework import permissions, serializers, viewsets
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.request import Request
from rest_framework_api_key.permissions import KeyParser

from realshop.models import Category, Coupon, Product, Supplier, Tenant, TenantAPIKey


def tenant_of(request: Request) -> Tenant:
    """The tenant the Api-Key names; no key: the read-only public one; a bad key: 403."""
    cached = getattr(request, "_tenant", None)
    if cached is not None:
        return cached
    key = KeyParser().get(request)
    if key is None:
        tenant = Tenant.objects.get(name="public")
    else:
        try:
            api_key = TenantAPIKey.objects.get_from_key(key)
        except TenantAPIKey.DoesNotExist:
            raise PermissionDenied("Invalid Api-Key.") from None
        if not api_key.is_valid(key) or api_key.has_expired or api_key.revoked:
            raise PermissionDenied("Invalid Api-Key.")
        tenant = api_key.tenant
    request._tenant = tenant
    return tenant


class TenantWritable(permissions.BasePermission):
    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        tenant = tenant_of(request)
        return request.method in permissions.SAFE_METHODS or not tenant.read_only


class TenantSerializer(serializers.ModelSerializer):
    """Natural keys are unique per tenant, with DRF's own message."""

    natural_key = ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        name = self.natural_key
        if name in attrs:
            tenant = self.context["tenant"]
            model: type[Model] = self.Meta.model
            taken = model.objects.filter(tenant=tenant, **{name: attrs[name]})
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                verbose = model._meta.verbose_name
                raise serializers.ValidationError(
                    {name: [f"{verbose} with this {name} already exists."]}
                )
        return attrs


class SupplierSerializer(TenantSerializer):
    natural_key = "code"

    class Meta:
        model = Supplier
        fields = ("id", "code", "name", "email", "created_at", "updated_at")


class CategorySerializer(TenantSerializer):
    natural_key = "slug"

    class Meta:
        model = Category
        fields = ("id", "slug", "name", "description", "created_at", "updated_at")


class ProductSerializer(TenantSerializer):
    natural_key = "sku"
    supplier = serializers.PrimaryKeyRelatedField(
        queryset=Supplier.objects.all(), allow_null=True, required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:  # another tenant's supplier "does not exist"
            self.fields["supplier"].queryset = Supplier.objects.filter(tenant=tenant)

    class Meta:
        model = Product
        fields = (
            "id", "sku", "name", "price", "category", "supplier", "active", "description",
            "created_at", "updated_at",
        )  # fmt: skip


class CouponSerializer(TenantSerializer):
    natural_key = "code"

    class Meta:
        model = Coupon
        fields = ("id", "code", "percent", "active", "created_at", "updated_at")


class TenantViewSet(viewsets.ModelViewSet):
    permission_classes = (permissions.IsAuthenticated, TenantWritable)
    model: type[Model]

    def get_queryset(self) -> QuerySet[Any]:
        return self.model.objects.filter(tenant=tenant_of(self.request))

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "tenant": tenant_of(self.request)}

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.save(tenant=tenant_of(self.request))


class InUse(APIException):
    status_code = 409
    default_detail = "This object is referenced by others and cannot be deleted."
    default_code = "protected"


class SupplierViewSet(TenantViewSet):
    model = Supplier
    serializer_class = SupplierSerializer

    def perform_destroy(self, instance: Model) -> None:
        # A product's supplier is on_delete=PROTECT: said as a 409, not Django's 500.
        try:
            instance.delete()
        except ProtectedError:
            raise InUse() from None


class CategoryViewSet(TenantViewSet):
    model = Category
    serializer_class = CategorySerializer


class ProductViewSet(TenantViewSet):
    model = Product
    serializer_class = ProductSerializer


class CouponViewSet(TenantViewSet):
    model = Coupon
    serializer_class = CouponSerializer
